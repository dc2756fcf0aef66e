"""Orthogonality and disentanglement metrics (design.md §6): pure functions on arrays, one file each.

`registry.METRICS` declares every metric once; import the metric modules themselves for the functions
(this package imports nothing, so reading the registry stays cheap).
"""
