"""``sslbench list`` and ``sslbench plugins``: what is registered, and by whom.

Both read the catalog index (:mod:`sslbench.core.index`): while no plugin changed they print
without importing a plugin, hence without torch.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

import typer

from sslbench.cli import app
from sslbench.core.catalog import KINDS
from sslbench.errors import UsageError

if TYPE_CHECKING:
    from sslbench.core.index import Index
    from sslbench.core.plugins import Plugins

Kind = Enum("Kind", {k: k for k in KINDS}, type=str)


def load_plugins(**options) -> Plugins:
    """The plugin manager's ``load_plugins``, imported on first use (``--help`` never needs it;
    tests replace this name to install throwaway plugins)."""
    from sslbench.core.plugins import load_plugins as load_all

    return load_all(**options)


def load(strict: bool = False) -> Plugins:
    """Load plugins for one command; failures become one warning line each on stderr."""
    plugins = load_plugins(strict=strict)
    for failure in plugins.failures:
        typer.echo(f"warning: {failure}", err=True)
    return plugins


def index() -> Index:
    """The catalog listing, from the cache when it is fresh (see :mod:`sslbench.core.index`)."""
    from sslbench.core.index import load_index

    return load_index(lambda: load_plugins())  # looked up at call time: tests replace it


@app.command("list")
def list_components(
    kind: Kind | None = typer.Argument(None, help="methods, backbones, optimizers, "
                                                  "schedulers, datasets or loggers "
                                                  "(default: all)"),
) -> None:
    """List registered components (name, plugin, summary)."""
    from rich.console import Console
    from rich.table import Table

    listing = index()
    for failure in listing.failures:
        typer.echo(f"warning: {failure}", err=True)
    console = Console(width=120)
    for k in [kind.value] if kind else KINDS:
        table = Table(title=k, title_justify="left", show_edge=False)
        for column in ("name", "plugin", "summary"):
            table.add_column(column)
        for entry in listing.entries_of(k):
            source = entry.distribution or entry.plugin.rsplit(".", 1)[-1] + " (built-in)"
            table.add_row(entry.name, source, entry.summary)
        console.print(table)


@app.command("plugins")
def list_plugins(
    strict: bool = typer.Option(False, help="Exit 2 if any plugin failed to load or looks "
                                "wrong (e.g. a hook function without @hookimpl)."),
) -> None:
    """Loaded plugins (distribution, version, what each registered), then any that failed.

    Third-party plugins come from the ``sslbench`` entry-point group; set
    SSLBENCH_DISABLE_PLUGIN_AUTOLOAD=1 to load only the built-ins.
    """
    plugins = index()
    for info in sorted(plugins.loaded, key=lambda p: (p.builtin, p.name)):
        where = " ".join(filter(None, (info.distribution, info.version))) or "built-in"
        what = "; ".join(f"{k}: {', '.join(v)}" for k, v in info.registered.items())
        typer.echo(f"{info.name}  [{where}]  {what or 'nothing registered'}")
    for failure in plugins.failures:
        typer.echo(f"FAILED {failure}")
    warnings = [f"plugin {p.name!r}: {w}" for p in plugins.loaded for w in p.warnings]
    for line in warnings:
        typer.echo(f"warning: {line}", err=True)
    if strict and plugins.failures:
        count = len(plugins.failures)
        raise UsageError(f"{count} plugin{'s' if count > 1 else ''} failed to load (--strict)")
    if strict and warnings:
        raise UsageError(f"{warnings[0]} (--strict)")
