"""``syncbridge mocks serve``: the mock upstreams (``python -m mocks``), loaded only when asked
so that the engine's commands never import them."""

from __future__ import annotations

import importlib

import click

from syncbridge.cli.main import cli


class _MocksGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return ["serve"]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name != "serve":
            return None
        try:
            module = importlib.import_module("mocks.__main__")
        except ImportError as exc:
            raise click.ClickException(f"the mock servers are not installed: {exc}") from None
        command: click.Command = module.main
        return command


@cli.group(cls=_MocksGroup)
def mocks() -> None:
    """Mock CRM and Billing upstreams with fault injection."""
