"""Where a study's files live (design.md §7), for local paths and pyarrow filesystem URIs alike.

    <storage>/<study>/study.yaml                                   the normalised spec as submitted
    <storage>/<study>/restarts.json                                its expanded restarts (workers.store.plan)
    <storage>/<study>/checkpoints/dataset=<d>/model=<m>/*.parquet   one row per (run_key, epoch)
    <storage>/<study>/trace/dataset=<d>/model=<m>/*.parquet         training-time series
    <storage>/<study>/models/<run_key>/e<epoch>.pt                  state dicts (weights_only loadable)
    <storage>/<study>/tune/                                        Ray Tune's experiments and the driver's state
    <storage>/<study>/driver.lease                                 the live driver's lease (sweep.lease)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

DRIVER_STATE_FILE = "tune/driver.json"
LEASE_FILE = "driver.lease"


def join_uri(base: str, *parts: str) -> str:
    """`base/part/...` for a local path or a URI whose query (`?endpoint_override=...`) stays at the end."""
    root, sep, query = base.partition("?")
    return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts)]) + sep + query


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(pyarrow filesystem, path inside it) for a local path or a URI such as s3://bucket/prefix."""
    if "://" in uri:
        fs, path = pafs.FileSystem.from_uri(uri)
        return fs, path.rstrip("/")
    return pafs.LocalFileSystem(), str(Path(uri).expanduser().absolute())


def split_study_dir(study_dir: str) -> tuple[str, str]:
    """`<storage>/<study>` (path or URI, query kept on the storage) -> (storage, folder name)."""
    root, sep, query = study_dir.partition("?")
    root = root.rstrip("/")
    parent, _, name = root.rpartition("/")
    if not name:
        raise ValueError(f"{study_dir!r} does not name a study folder (expected <storage>/<study>)")
    if not parent:
        parent = "."
    return parent + sep + query, name


def model_uri(study_uri: str, run_key: str, epoch: int) -> str:
    """`<study_uri>/models/<run_key>/e<epoch>.pt` (keeps an s3 query string at the end)."""
    return join_uri(study_uri, "models", run_key, f"e{epoch}.pt")


@dataclass(frozen=True)
class StudyLocation:
    """One study folder: its filesystem, the path inside it and the URI as the user can reuse it."""

    fs: pafs.FileSystem
    path: str
    uri: str

    @property
    def name(self) -> str:
        """The folder's name (normally the study's name; a copied or renamed folder keeps its own)."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    def display(self, path: str) -> str:
        """A path inside this filesystem as the user can find it (`s3://...` for object stores)."""
        return path if isinstance(self.fs, pafs.LocalFileSystem) else f"{self.fs.type_name}://{path}"


def location(study_uri: str) -> StudyLocation:
    """The StudyLocation of a study folder given as a path or URI (whether or not it exists yet)."""
    fs, path = filesystem(study_uri)
    return StudyLocation(fs, path, study_uri)


def is_study_dir(fs: pafs.FileSystem, path: str) -> bool:
    infos = fs.get_file_info([f"{path}/study.yaml", f"{path}/checkpoints"])
    return any(i.type != pafs.FileType.NotFound for i in infos)


def resolve_studies(path: str, study: str | Iterable[str] | None = None) -> list[StudyLocation]:
    """Study folders named by `path` (a study folder, or a storage root) and `study` (name or names).

    A storage root without `study` means every study folder directly under it. Raises FileNotFoundError
    naming what was looked for when nothing matches.
    """
    names = [study] if isinstance(study, str) else list(study or [])
    fs, base = filesystem(path)
    if names:
        locs = [StudyLocation(fs, f"{base}/{n}", join_uri(path, n)) for n in names]
        missing = [loc.uri for loc in locs if not is_study_dir(fs, loc.path)]
        if missing:
            raise FileNotFoundError(f"no study folder (study.yaml or checkpoints/) at {', '.join(missing)}")
        return locs
    info = fs.get_file_info(base)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"{path!r} does not exist; give a study folder (<storage>/<study>) or a storage root")
    if is_study_dir(fs, base):
        return [StudyLocation(fs, base, path)]
    subdirs = [i for i in fs.get_file_info(pafs.FileSelector(base)) if i.type == pafs.FileType.Directory]
    locs = [StudyLocation(fs, i.path, join_uri(path, i.base_name)) for i in sorted(subdirs, key=lambda i: i.path)
            if is_study_dir(fs, i.path)]
    if not locs:
        raise FileNotFoundError(f"{path!r} is neither a study folder (no study.yaml or checkpoints/) nor a storage "
                                "root holding study folders")
    return locs


# --------------------------------------------------------------------------------------------------
# Small files
# --------------------------------------------------------------------------------------------------

def write_bytes(uri: str, data: bytes) -> str:
    """Write a file atomically (local: temporary name then rename; object stores: one PUT); returns its path."""
    fs, path = filesystem(uri)
    directory, _, name = path.rpartition("/")
    fs.create_dir(directory, recursive=True)
    if isinstance(fs, pafs.LocalFileSystem):
        tmp = f"{directory}/.{name}.tmp"
        with fs.open_output_stream(tmp) as out:
            out.write(data)
        fs.move(tmp, path)
    else:
        with fs.open_output_stream(path) as out:
            out.write(data)
    return path


def write_text(uri: str, text: str) -> str:
    return write_bytes(uri, text.encode())


def read_text(uri: str) -> str | None:
    """The file's text, or None if it does not exist."""
    fs, path = filesystem(uri)
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return f.read().decode()


def write_study_yaml(study_uri: str, normalized: dict[str, Any]) -> str:
    """Write the normalised spec as `<study>/study.yaml`; returns the text written."""
    import yaml

    text = yaml.safe_dump(normalized, sort_keys=False)
    write_text(join_uri(study_uri, "study.yaml"), text)
    return text


def read_study_text(study_uri: str) -> str | None:
    """The normalised `study.yaml` text of a study folder, or None when absent."""
    return read_text(join_uri(study_uri, "study.yaml"))


def read_study_yaml(study_uri: str) -> dict[str, Any] | None:
    import yaml

    text = read_study_text(study_uri)
    return None if text is None else yaml.safe_load(text)


def warn_renamed(study_uri: str, study_name: Any) -> None:
    """Say so when a study folder's name differs from the study it holds (a copy or a renamed folder)."""
    folder = split_study_dir(study_uri)[1]
    if study_name is not None and study_name != folder:
        print(f"warning: folder {folder!r} holds study {study_name!r} (copied or renamed); reading it as it is",
              file=sys.stderr)


def write_driver_state(study_uri: str, state: dict[str, Any]) -> None:
    write_text(join_uri(study_uri, DRIVER_STATE_FILE), json.dumps(state, sort_keys=True))


def read_driver_state(study_uri: str) -> dict[str, Any] | None:
    text = read_text(join_uri(study_uri, DRIVER_STATE_FILE))
    return None if text is None else json.loads(text)
