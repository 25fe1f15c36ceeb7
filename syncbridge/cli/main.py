"""``syncbridge`` command line. Exit codes: 0 ok; 1 refused; 2 usage; 3 database not ready."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from syncbridge.cli.app import App
from syncbridge.config import ConfigError
from syncbridge.errors import DatabaseNotReady, Refused
from syncbridge.logs import configure_logging
from syncbridge.plugins import PluginError

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_DATABASE = 3


# Where each command lives. Modules are imported only for the command being run (and all of
# them for --help), so `syncbridge enqueue` does not pay for the API server or the benchmarks.
COMMAND_MODULES = {
    "migrate": "worker",
    "worker": "worker",
    "enqueue": "jobs",
    "jobs": "jobs",
    "dlq": "jobs",
    "replay": "jobs",
    "retry": "jobs",
    "cancel": "jobs",
    "plugins": "jobs",
    "check": "ops",
    "reconcile": "ops",
    "prune": "ops",
    "demo": "demo",
    "stats": "stats",
    "serve": "serve",
    "bench": "bench",
    "mocks": "mocks_cmd",
}


class Group(click.Group):
    """Loads commands on demand, and turns the engine's refusals into one-line errors with the
    documented exit codes."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            importlib.import_module(f"syncbridge.cli.{module}")  # registers via @cli.command
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Refused as exc:
            _fail(str(exc), EXIT_REFUSED)
        except ValueError as exc:
            _fail(str(exc), EXIT_REFUSED)
        except (ConfigError, PluginError) as exc:  # a bad setting, SYNCBRIDGE_PLUGINS included
            _fail(str(exc), EXIT_USAGE)
        except DatabaseNotReady as exc:
            _fail(str(exc), EXIT_DATABASE)


def _fail(message: str, code: int) -> None:
    from syncbridge.cli.output import shown  # only when failing: it imports rich

    # A message may quote stored or upstream text (a driver's message, an error class): its
    # terminal escapes are shown as text, line by line.
    printable = "\n".join(shown(line) for line in message.split("\n"))
    click.echo(f"error: {printable}", err=True)
    sys.exit(code)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--database-url", envvar=None, help="SQLAlchemy URL (overrides the environment).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML config file.")
@click.version_option(package_name="syncbridge")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, config_file: str | None) -> None:
    """syncbridge: a durable job engine for integration sync work."""
    ctx.obj = App(config_file=config_file, flags={"database_url": database_url})
    try:
        settings = ctx.obj.settings
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
    configure_logging(settings.log_format, settings.log_level)


def main() -> None:
    cli(prog_name="syncbridge")
