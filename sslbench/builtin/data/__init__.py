"""Built-in data (one plugin module per component)."""
