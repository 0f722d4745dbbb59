"""Built-in methods (one plugin module per component)."""
