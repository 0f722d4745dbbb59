"""The Typer app: parses, validates into config models, calls the layers below, prints.

Every command lives in its own module here and registers itself on :data:`app`. Errors a user
can cause become one line on stderr and an exit code: 2 for usage, 1 for runtime, 130 for
Ctrl-C. No traceback reaches the user for those.
"""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup

try:  # typer >= 0.24 carries its own copy of click
    from typer.exceptions import TyperException as _CliError
except ImportError:  # pragma: no cover - older typer on top of click
    from click import ClickException as _CliError

from sslbench.errors import SSLBenchError


class _Group(TyperGroup):
    """Turns usage errors and :class:`SSLBenchError` into one line and an exit code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        try:
            rc = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _CliError as exc:  # bad options and arguments: click's usage errors, exit 2
            _fail(exc.format_message(), exc.exit_code)
        except SSLBenchError as exc:
            _fail(str(exc), exc.exit_code)
        except (KeyboardInterrupt, typer.Abort):
            _fail("interrupted", 130)
        if isinstance(rc, int) and rc:
            sys.exit(rc)


def _fail(message: str, code: int):
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    sys.exit(code)


app = typer.Typer(
    cls=_Group, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="sslbench: pretrain with an SSL method, evaluate frozen features, keep the record.",
)


def main() -> None:
    app(prog_name="sslbench")


# Each module adds its commands to ``app`` (imported for that side effect).
from sslbench.cli import catalog as _catalog  # noqa: E402,F401
from sslbench.cli import eval as _eval  # noqa: E402,F401
from sslbench.cli import export as _export  # noqa: E402,F401
from sslbench.cli import matrix as _matrix  # noqa: E402,F401
from sslbench.cli import plot as _plot  # noqa: E402,F401
from sslbench.cli import run as _run  # noqa: E402,F401
from sslbench.cli import show as _show  # noqa: E402,F401
from sslbench.cli import table as _table  # noqa: E402,F401
