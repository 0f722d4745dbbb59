"""The hooks a plugin implements. Their names are public API (see docs/plugins.md).

Each hook receives ``register(name, component, **metadata)``; the core owns that callback, so it
can reject duplicate names, remember which distribution registered what, and suggest names.
"""

import pluggy

hookspec = pluggy.HookspecMarker("sslbench")
hookimpl = pluggy.HookimplMarker("sslbench")


@hookspec
def sslbench_register_methods(register):
    """Register SSL methods: ``register("name", MethodClass)``."""


@hookspec
def sslbench_register_backbones(register):
    """Register backbones: ``register("name", factory)``; ``factory(image_size, **options)``."""


@hookspec
def sslbench_register_optimizers(register):
    """Register optimizers: ``register("name", factory)``; ``factory(named_params, cfg)``."""


@hookspec
def sslbench_register_schedulers(register):
    """Register lr schedules: ``register("name", factory)``; returns ``lr_at(step)``."""


@hookspec
def sslbench_register_datasets(register):
    """Register datasets: ``register("name", factory)``; ``factory(data_dir, download)``."""


@hookspec
def sslbench_register_loggers(register):
    """Register experiment loggers: ``register("name", factory)``; ``factory(run_dir, run_id,
    options)`` returns a :class:`sslbench.core.loggers.Logger`."""
