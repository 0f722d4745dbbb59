"""Contracts: hook specifications, plugin manager, catalog, config and record models.

Nothing here knows a concrete method, backbone or dataset.
"""
