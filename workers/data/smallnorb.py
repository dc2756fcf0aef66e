"""SmallNORB (LeCun, Huang & Bottou 2004) from the official binary-matrix `.mat` files, plain or gzipped.

The user gives the folder holding the six files of cs.nyu.edu/~ylclab/data/norb-v1.0-small/:

    smallnorb-5x46789x9x18x6x2x96x96-training-{dat,cat,info}.mat[.gz]
    smallnorb-5x01235x9x18x6x2x96x96-testing-{dat,cat,info}.mat[.gz]

Each split holds 24,300 stereo pairs: `dat` uint8 (24300, 2, 96, 96), `cat` int32 (24300,) the category,
`info` int32 (24300, 4) instance, elevation, azimuth (0, 2, …, 34) and lighting. Together the two splits are every
combination of category 5 × instance 10 × elevation 9 × azimuth 18 × lighting 6 = 48,600 once (the 5 factors as
published; disentanglement_lib draws the instance at random and keeps the other 4). The first image of each pair
is resized to 64×64 with Lanczos filtering (as disentanglement_lib does) and stored in the node cache as uint8 in
grid order, last factor fastest.

Binary-matrix header: int32 magic (0x1E3D4C55 uint8, 0x1E3D4C54 int32), int32 ndim, max(3, ndim) int32 dims,
little-endian, then the data in C order. Files are checked before anything is cached: names, headers, sizes (a
gzipped file by its trailer's length), classes, and the md5 of the gzipped releases against the published one.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .base import DataError
from .cache import cached_array
from .files import check_folder, checksum_problem, files_identity, refuse, resize_lanczos
from .shapes3d import decode_hwc
from .stored import StoredGridDataset, check_classes

FORMAT_VERSION = 1
IMAGE, SOURCE_IMAGE = 64, 96
FACTOR_NAMES = ["category", "instance", "elevation", "azimuth", "lighting"]
FACTOR_SIZES = [5, 10, 9, 18, 6]
ROWS_PER_FILE = 24_300
SPLITS = {"training": "smallnorb-5x46789x9x18x6x2x96x96-training",
          "testing": "smallnorb-5x01235x9x18x6x2x96x96-testing"}
MAGIC = {0x1E3D4C55: np.dtype(np.uint8), 0x1E3D4C54: np.dtype("<i4")}
# md5 of the gzipped files at cs.nyu.edu/~ylclab/data/norb-v1.0-small/, as nmichlo/disent records them
GZ_MD5 = {("training", "dat"): "66054832f9accfe74a0f4c36a75bc0a2",
          ("training", "cat"): "23c8b86101fbf0904a000b43d3ed2fd9",
          ("training", "info"): "51dee1210a742582ff607dfd94e332e3",
          ("testing", "dat"): "e4ad715691ed5a3a5f138751a4ceb071",
          ("testing", "cat"): "5aa791cd7e6016cf957ce9bdb93b8603",
          ("testing", "info"): "a9454f3864d7fd4bb3ea7fc3eb84924e"}
EXPECTED = "the folder of the six official SmallNORB files smallnorb-5x...-{training,testing}-{dat,cat,info}.mat[.gz]"


def _shape(kind: str) -> tuple[tuple[int, ...], np.dtype]:
    return {"dat": ((ROWS_PER_FILE, 2, SOURCE_IMAGE, SOURCE_IMAGE), np.dtype(np.uint8)),
            "cat": ((ROWS_PER_FILE,), np.dtype("<i4")), "info": ((ROWS_PER_FILE, 4), np.dtype("<i4"))}[kind]


def _header_bytes(ndim: int) -> int:
    return 8 + 4 * max(3, ndim)


def find_files(folder: Path) -> dict[tuple[str, str], Path]:
    """{(split, kind): file} of the six files in `folder`; DataError naming the first one missing."""
    out = {}
    for split, stem in SPLITS.items():
        for kind in ("dat", "cat", "info"):
            plain, gz = folder / f"{stem}-{kind}.mat", folder / f"{stem}-{kind}.mat.gz"
            if not plain.is_file() and not gz.is_file():
                raise DataError(f"{folder}: holds no {plain.name} (nor .gz); expected {EXPECTED}")
            out[split, kind] = plain if plain.is_file() else gz
    return out


def _open(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _stored_size(path: Path) -> int:
    """Bytes of the matrix file (of its content when gzipped: the trailer's length modulo 2^32)."""
    if path.suffix != ".gz":
        return path.stat().st_size
    with open(path, "rb") as fh:
        fh.seek(-4, 2)
        return struct.unpack("<I", fh.read(4))[0]


def check_matrix(path: Path, kind: str) -> None:
    """DataError naming `path` unless it is a complete binary matrix of `kind`'s published shape and dtype."""
    shape, dtype = _shape(kind)
    try:
        with _open(path) as fh:
            head = fh.read(_header_bytes(len(shape)))
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: not readable ({e}); expected the official SmallNORB {kind} file") from e
    if len(head) < 8:
        raise DataError(f"{path}: too short for a binary-matrix header; expected the official SmallNORB {kind} file")
    magic, ndim = struct.unpack("<ii", head[:8])
    dims = struct.unpack(f"<{max(3, ndim)}i", head[8:_header_bytes(ndim)]) if 0 < ndim <= 8 and \
        len(head) >= _header_bytes(ndim) else ()
    got = (MAGIC.get(magic), tuple(dims[:ndim]))
    if got != (dtype, shape):
        raise DataError(f"{path}: binary matrix of dtype {got[0] or hex(magic)} and shape {got[1]}; expected "
                        f"{dtype} {shape} (the official SmallNORB {kind} file)")
    want = _header_bytes(len(shape)) + int(np.prod(shape)) * dtype.itemsize
    size = _stored_size(path)
    if size != (want % 2**32 if path.suffix == ".gz" else want):
        raise DataError(f"{path}: holds {size} bytes; expected {want} (a truncated or altered file)")


def _read_matrix(path: Path, kind: str) -> np.ndarray:
    shape, dtype = _shape(kind)
    with _open(path) as fh:
        fh.read(_header_bytes(len(shape)))
        raw = fh.read()
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def read_labels(files: dict[tuple[str, str], Path]) -> dict[str, np.ndarray]:
    """{split: int64 (N, 5) classes} (category, instance, elevation, azimuth / 2, lighting) from cat and info."""
    out = {}
    for split in SPLITS:
        cat, info = _read_matrix(files[split, "cat"], "cat"), _read_matrix(files[split, "info"], "info")
        labels = np.column_stack([cat, info]).astype(np.int64)
        if (labels[:, 3] % 2).any():
            raise DataError(f"{files[split, 'info']}: azimuths must be even (0, 2, …, 34)")
        labels[:, 3] //= 2
        check_classes(labels, FACTOR_NAMES, FACTOR_SIZES, str(files[split, "info"]))
        out[split] = labels
    return out


def _grid_rows(labels: dict[str, np.ndarray], folder: Path) -> dict[str, np.ndarray]:
    """{split: grid index of each row}; DataError unless the two splits hold every combination exactly once."""
    index = {s: np.ravel_multi_index(tuple(v.T), FACTOR_SIZES) for s, v in labels.items()}
    every = np.concatenate(list(index.values()))
    if every.size != int(np.prod(FACTOR_SIZES)) or np.unique(every).size != every.size:
        raise DataError(f"{folder}: the training and testing files do not hold each of the "
                        f"{int(np.prod(FACTOR_SIZES))} factor combinations exactly once; expected {EXPECTED}")
    return index


def check_folder_files(path: str) -> list[str]:
    """Problems with `path` as the SmallNORB folder (one line each naming the file and what was expected)."""
    try:
        folder = check_folder(path, EXPECTED)
        files = find_files(folder)
        for (_, kind), f in files.items():
            check_matrix(f, kind)
        _grid_rows(read_labels(files), folder)
    except DataError as e:
        return [str(e)]
    problems = [checksum_problem(f, GZ_MD5[key], "published for the gzipped release, as nmichlo/disent records it")
                for key, f in files.items() if f.suffix == ".gz"]
    return [p for p in problems if p]


def open_smallnorb(path: str, data_seed: int = 0) -> StoredGridDataset:
    """SmallNORB from the official files in folder `path`, converted once into the node cache."""
    refuse(check_folder_files(path))
    folder = Path(path).expanduser()
    files = find_files(folder)
    rows_of = _grid_rows(read_labels(files), folder)
    n = int(np.prod(FACTOR_SIZES))

    def build(out: np.ndarray) -> None:
        pair = 2 * SOURCE_IMAGE * SOURCE_IMAGE
        for split in SPLITS:
            f = files[split, "dat"]
            with _open(f) as fh:
                fh.read(_header_bytes(4))
                for a in range(0, ROWS_PER_FILE, 2048):
                    b = min(ROWS_PER_FILE, a + 2048)
                    buf = fh.read(pair * (b - a))
                    if len(buf) != pair * (b - a):
                        raise DataError(f"{f}: truncated at pair {a + len(buf) // pair} of {ROWS_PER_FILE}")
                    first = np.frombuffer(buf, np.uint8).reshape(b - a, 2, SOURCE_IMAGE, SOURCE_IMAGE)[:, 0]
                    out[rows_of[split][a:b]] = resize_lanczos(first, IMAGE)[..., None]

    key = f"smallnorb-files-{files_identity([files[k] for k in sorted(files)])}-v{FORMAT_VERSION}"
    rows = cached_array(key, (n, IMAGE, IMAGE, 1), np.uint8, build)
    return StoredGridDataset("smallnorb", FACTOR_NAMES, list(FACTOR_SIZES), [np.arange(float(s)) for s in FACTOR_SIZES],
                             (1, IMAGE, IMAGE), rows, decode_hwc, None, data_seed, source=str(folder))
