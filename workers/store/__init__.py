"""The store layer: the one place that knows where a study's files live and how they are written and read.

    layout    paths and URIs of a study folder, small text files (study.yaml, the driver's state)
    schema    the Parquet schema (v1) of the `checkpoints` and `trace` tables, defined once
    write     atomic Parquet writes (the sink the workers and the driver append rows through)
    files     which Parquet files of a table are readable (the others are skipped with a warning)
    views     the read-only DuckDB views every reader uses (checkpoints, runs, groups, trace)
    restarts  which restarts are complete, diverged or failed: one query on the deduplicated view
    compact   small-file compaction per partition, views unchanged

Everything above this layer (sweep, analysis) reads and writes the store through these modules only.
"""
