"""Test scaffolding shared by `tests/` and `bench/`: a near-zero-cost trainable and synthetic Parquet stores.

The product (`sweep`, `workers`, `analysis`) never imports this package (tests/test_import_layers.py checks).
It is installed with the project so that Ray workers, which do not start in the repository, can import the
stub trainable by name.
"""
