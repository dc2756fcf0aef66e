"""Small-file compaction of a study's store: one Parquet file per partition, views unchanged (design.md §7).

Per partition directory (`<table>/dataset=<d>/model=<m>/`): read every readable file, write their rows (all
of them, duplicates included: the readers' dedup keeps deciding) as one new file atomically, then delete the
inputs. Unreadable files are skipped with a warning and left where they are. A reader at any moment sees
either the inputs, or the inputs plus the merged copy (identical rows, which the dedup collapses), or the
merged file alone: every view returns the same result throughout. Files that appear while compacting (a
sweep still running) are not touched. A crash leaves at worst both copies, which the next `compact` merges.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from workers.store.files import parquet_files, readable_files
from workers.store.layout import location
from workers.store.schema import TABLES
from workers.store.write import new_file_name, write_table_atomic


@dataclass
class CompactResult:
    files_before: int
    files_after: int
    partitions: int
    rows: int


def compact_study(study_uri: str, tables: tuple[str, ...] = tuple(TABLES)) -> CompactResult:
    """Merge each partition's files of each table into one; returns file counts before and after."""
    before = after = partitions = rows = 0
    loc = location(study_uri)
    fs = loc.fs
    for table in tables:
        files = readable_files(loc, table)
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
            write_table_atomic(fs, directory, new_file_name("-compacted"), merged)
            for f in group:
                fs.delete_file(f)
            rows += merged.num_rows
    return CompactResult(before, after, partitions, rows)


def count_files(study_uri: str, tables: tuple[str, ...] = tuple(TABLES)) -> dict[str, int]:
    """Visible Parquet files per table."""

    return {t: len(parquet_files(location(study_uri), t)) for t in tables}
