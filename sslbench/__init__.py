"""sslbench: a benchmark harness for self-supervised learning on images.

The public API for plugin authors is :data:`hookimpl` (decorate your ``sslbench_register_*``
functions with it) and the component contracts in :mod:`sslbench.core.components`.
"""

from sslbench.core.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]
