"""torch.save / torch.load through the study's pyarrow filesystem, atomically (local paths and s3:// alike).

Per-seed state dicts go to `workers.store.layout.model_uri` (design.md §7) as plain dicts of
tensors, loadable with `torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import io
import os
import uuid
from typing import Any

import pyarrow.fs as pafs
import torch

from workers.store.layout import filesystem


def save_torch(obj: Any, uri: str) -> str:
    """torch.save `obj` to `uri` so that no reader ever sees a partial file; returns the path written."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    fs, path = filesystem(uri)
    directory = path.rsplit("/", 1)[0]
    fs.create_dir(directory, recursive=True)
    if isinstance(fs, pafs.LocalFileSystem):
        tmp = f"{directory}/.{path.rsplit('/', 1)[1]}.{uuid.uuid4().hex[:8]}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    else:  # object stores publish a PUT atomically
        with fs.open_output_stream(path) as out:
            out.write(data)
    return path


def load_torch(uri: str, *, weights_only: bool = True, map_location: str | torch.device = "cpu") -> Any:
    """torch.load from a local path or a filesystem URI."""
    fs, path = filesystem(uri)
    with fs.open_input_file(path) as fh:
        data = fh.read()
    return torch.load(io.BytesIO(data), weights_only=weights_only, map_location=map_location)
