"""The Typer app: parses, validates into config models, calls the layers below, prints.

Every command lives in its own module here and registers itself on :data:`app`. Errors a user
can cause become one line on stderr and an exit code: 2 for usage, 1 for runtime, 130 for
Ctrl-C, 143 for SIGTERM. No traceback reaches the user for those.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

import typer
from typer.core import TyperGroup

try:  # typer >= 0.24 carries its own copy of click
    from typer.exceptions import TyperException as _CliError
except ImportError:  # pragma: no cover - older typer on top of click
    from click import ClickException as _CliError

from sslbench.errors import SSLBenchError, Terminated


class _Group(TyperGroup):
    """Turns usage errors and :class:`SSLBenchError` into one line and an exit code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        try:
            with _sigterm_unwinds():
                rc = super().main(args, prog_name, complete_var, standalone_mode=False,
                                  **extra)
        except _CliError as exc:  # bad options and arguments: click's usage errors, exit 2
            _fail(exc.format_message(), exc.exit_code)
        except SSLBenchError as exc:
            _fail(str(exc), exc.exit_code)
        except (KeyboardInterrupt, typer.Abort):
            _fail("interrupted", 130)
        except Terminated:
            _fail("terminated by SIGTERM: what was written before is intact (a run continues "
                  "from its last checkpoint with --resume auto)", 143)
        if isinstance(rc, int) and rc:
            sys.exit(rc)


@contextlib.contextmanager
def _sigterm_unwinds():
    """SIGTERM raises :class:`Terminated` (which unwinds like Ctrl-C) instead of killing the
    process on the spot; the training loop defers it further, to the next step boundary."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _raise_terminated(signum, frame):
    raise Terminated


def _fail(message: str, code: int):
    # one line, and bounded: a message may quote user input (a backstop for any that does
    # not truncate it itself)
    from sslbench.core.safe_io import one_line  # here, not at import: it loads yaml

    typer.echo(f"error: {one_line(message, 2000)}", err=True)
    sys.exit(code)


# Plain (click) help text, not rich's panels: rendering help with rich imports ~65 ms of rich
# modules, more than the rest of `sslbench --help` (benchmarks/test_cli_startup.py).
app = typer.Typer(
    cls=_Group, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="sslbench: pretrain with an SSL method, evaluate frozen features, keep the record.",
)


def main() -> None:
    app(prog_name="sslbench")


# Each module adds its commands to ``app`` (imported for that side effect). They import heavy
# things (torch, pandas, ...) inside their command functions only, so that --help, list,
# plugins, show and table stay fast (tests/test_cli_imports.py).
from sslbench.cli import catalog as _catalog  # noqa: E402,F401
from sslbench.cli import eval as _eval  # noqa: E402,F401
from sslbench.cli import export as _export  # noqa: E402,F401
from sslbench.cli import matrix as _matrix  # noqa: E402,F401
from sslbench.cli import plot as _plot  # noqa: E402,F401
from sslbench.cli import report as _report  # noqa: E402,F401
from sslbench.cli import run as _run  # noqa: E402,F401
from sslbench.cli import show as _show  # noqa: E402,F401
from sslbench.cli import table as _table  # noqa: E402,F401
