"""Built-in optim (one plugin module per component)."""
