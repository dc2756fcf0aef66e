"""Small-file compaction of a study's store: one Parquet file per partition, views unchanged (design.md §7).

Per partition directory (`<table>/dataset=<d>/model=<m>/`): read every visible file, write their rows (all of
them, duplicates included: the readers' dedup keeps deciding) as one new file atomically, then delete the
inputs. A reader at any moment sees either the inputs, or the inputs plus the merged copy (identical rows,
which the dedup collapses), or the merged file alone: every view returns the same result throughout. Files
that appear while compacting (a sweep still running) are not touched. A crash leaves at worst both copies,
which the next `compact` merges.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from sweep.store import list_parquet
from workers.sink import TABLES, write_table_atomic


@dataclass
class CompactResult:
    files_before: int
    files_after: int
    partitions: int
    rows: int


def compact_study(study_uri: str, tables: tuple[str, ...] = tuple(TABLES)) -> CompactResult:
    """Merge each partition's files of each table into one; returns file counts before and after."""
    before = after = partitions = rows = 0
    for table in tables:
        fs, files = list_parquet(study_uri, table)
        by_dir: dict[str, list[str]] = defaultdict(list)
        for f in files:
            by_dir[f.rpartition("/")[0]].append(f)
        for directory, group in sorted(by_dir.items()):
            partitions += 1
            before += len(group)
            after += 1
            if len(group) == 1:
                rows += pq.ParquetFile(group[0], filesystem=fs).metadata.num_rows
                continue
            merged = pa.concat_tables(
                [pq.read_table(f, filesystem=fs, schema=TABLES[table]) for f in group])
            name = f"{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:8]}-compacted.parquet"
            write_table_atomic(fs, directory, name, merged)
            for f in group:
                fs.delete_file(f)
            rows += merged.num_rows
    return CompactResult(before, after, partitions, rows)


def count_files(study_uri: str, tables: tuple[str, ...] = tuple(TABLES)) -> dict[str, int]:
    """Visible Parquet files per table."""
    return {t: len(list_parquet(study_uri, t)[1]) for t in tables}
