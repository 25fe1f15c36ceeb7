"""``syncbridge serve``: the HTTP API, the admin UI and ``/metrics`` under uvicorn."""

from __future__ import annotations

import ipaddress
import secrets
import sys

import click

from syncbridge.cli.app import App
from syncbridge.cli.main import EXIT_USAGE, cli
from syncbridge.errors import DatabaseNotReady

pass_app = click.make_pass_decorator(App)


def _base_url(host: str, port: int) -> str:
    """The URL to print: a wildcard bind (``0.0.0.0``, ``::``) is reached as localhost here."""
    try:
        wildcard = ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        wildcard = False
    shown = "localhost" if wildcard else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--forwarded-allow-ips",
    default=None,
    metavar="IPS",
    help="Comma-separated addresses of reverse proxies whose X-Forwarded-For names the client "
    "(what wrong-token throttling counts by). Default: none; the TCP peer is the client.",
)
@pass_app
def serve(app: App, host: str, port: int, forwarded_allow_ips: str | None) -> None:
    """HTTP API + admin UI + /metrics. Prints a one-time login link for the UI."""
    import uvicorn  # here, not at import: `syncbridge --help` need not load the web stack

    from syncbridge.api import create_app
    from syncbridge.api.auth import Sessions, is_loopback

    token = app.settings.admin_token
    if token is None and not is_loopback(host):
        click.echo(
            f"error: refusing to bind {host} without SYNCBRIDGE_ADMIN_TOKEN: a generated token "
            "is only safe on a loopback address. Set the variable (or admin_token in the config "
            "file), or bind 127.0.0.1.",
            err=True,
        )
        sys.exit(EXIT_USAGE)
    generated = token is None
    token = token or secrets.token_urlsafe(32)
    sessions = Sessions()
    api = create_app(app, admin_token=token, sessions=sessions)
    try:
        app.store  # noqa: B018 - readiness check, so the warning comes before the banner
    except DatabaseNotReady as exc:
        click.echo(f"warning: {exc}; /ready answers 503 until it is", err=True)
    base = _base_url(host, port)
    click.echo(f"syncbridge API and admin UI on {base}/ui/  (API reference: {base}/docs)")
    if generated:
        click.echo(f"admin token (generated for this run; set SYNCBRIDGE_ADMIN_TOKEN): {token}")
    login = f"{base}/ui/login?token={sessions.mint_login_code()}"
    click.echo(f"log in to the admin UI (one-time link): {login}")
    sys.stdout.flush()
    # No access log: it would print the login code; the app logs each request itself.
    # Forwarding headers only from named proxies: uvicorn trusts them from 127.0.0.1 by
    # default, and a client that names its own address escapes the throttle (FM_030).
    uvicorn.run(
        api,
        host=host,
        port=port,
        access_log=False,
        log_level=app.settings.log_level,
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
    )
