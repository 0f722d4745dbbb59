"""``sslbench list`` and ``sslbench plugins``: what is registered, and by whom."""

from __future__ import annotations

from enum import Enum

import typer
from rich.console import Console
from rich.table import Table

from sslbench.cli import app
from sslbench.core.catalog import KINDS
from sslbench.core.plugins import Plugins, load_plugins
from sslbench.errors import UsageError

Kind = Enum("Kind", {k: k for k in KINDS}, type=str)


def load(strict: bool = False) -> Plugins:
    """Load plugins for one command; failures become one warning line each on stderr."""
    plugins = load_plugins(strict=strict)
    for failure in plugins.failures:
        typer.echo(f"warning: {failure}", err=True)
    return plugins


@app.command("list")
def list_components(
    kind: Kind | None = typer.Argument(None, help="methods, backbones, optimizers, "
                                                  "schedulers, datasets or loggers "
                                                  "(default: all)"),
) -> None:
    """List registered components (name, plugin, summary)."""
    plugins = load()
    console = Console(width=120)
    for k in [kind.value] if kind else KINDS:
        table = Table(title=k, title_justify="left", show_edge=False)
        for column in ("name", "plugin", "summary"):
            table.add_column(column)
        for entry in plugins.catalog.entries(k):
            source = entry.distribution or entry.plugin.rsplit(".", 1)[-1] + " (built-in)"
            table.add_row(entry.name, source, entry.summary)
        console.print(table)


@app.command("plugins")
def list_plugins(
    strict: bool = typer.Option(False, help="Exit 2 if any plugin failed to load."),
) -> None:
    """Loaded plugins (distribution, version, what each registered), then any that failed.

    Third-party plugins come from the ``sslbench`` entry-point group; set
    SSLBENCH_DISABLE_PLUGIN_AUTOLOAD=1 to load only the built-ins.
    """
    plugins = load_plugins()
    for info in sorted(plugins.loaded, key=lambda p: (p.builtin, p.name)):
        where = " ".join(filter(None, (info.distribution, info.version))) or "built-in"
        what = "; ".join(f"{k}: {', '.join(v)}" for k, v in info.registered.items())
        typer.echo(f"{info.name}  [{where}]  {what or 'nothing registered'}")
    for failure in plugins.failures:
        typer.echo(f"FAILED {failure}")
    if strict and plugins.failures:
        count = len(plugins.failures)
        raise UsageError(f"{count} plugin{'s' if count > 1 else ''} failed to load (--strict)")
