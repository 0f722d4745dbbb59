"""Built-in components. Every module here is a plugin: the plugin manager imports each one and
calls its ``@hookimpl`` functions, exactly as it does for third-party plugins. Modules whose
name starts with ``_`` are helpers, not plugins."""
