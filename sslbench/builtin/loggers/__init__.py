"""Built-in loggers (one plugin module per tracker); the csv one is always on."""
