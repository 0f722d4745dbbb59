"""Built-in backbones (one plugin module per component)."""
