"""Checks shared by the loaders of user-supplied dataset files: existence, `.npz` members, checksums."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

from .base import DataError
from .cache import cache_dir, file_identity

HASH_CHUNK = 16 * 2**20


def check_file(path: str | Path, expected: str) -> Path:
    """`path` as a Path if it is an existing regular file; else DataError saying what was expected."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"dataset file {str(p)!r} does not exist; expected {expected}")
    if p.is_dir():
        raise DataError(f"dataset path {str(p)!r} is a directory; expected {expected}")
    return p


def check_folder(path: str | Path, expected: str) -> Path:
    """`path` as a Path if it is an existing directory; else DataError saying what was expected."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise DataError(f"dataset path {str(p)!r} " + ("is not a directory" if p.exists() else "does not exist")
                        + f"; expected {expected}")
    return p


def refuse(problems: list[str]) -> None:
    """DataError with every problem found in a dataset's files, if any."""
    if problems:
        raise DataError("; ".join(problems))


def files_identity(paths: list[Path]) -> str:
    """A short stable identity of a set of source files (see `file_identity`)."""
    return hashlib.sha1("-".join(file_identity(p) for p in paths).encode()).hexdigest()[:16]


def resize_lanczos(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (n, size, size[, 3]) of uint8 images (n, H, W[, 3]), each resized with Lanczos filtering (PIL's, the
    filter disentanglement_lib resizes SmallNORB and Cars3D with)."""
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(im)).resize((size, size),
                                                                                 Image.Resampling.LANCZOS))
                     for im in images])


def md5_of(path: Path) -> str:
    """The md5 hex digest of a file, remembered in the node cache by the file's identity (path, size, mtime): a
    multi-gigabyte release is hashed once per node, not at every validation."""
    memo = cache_dir() / "checksums" / f"{file_identity(path)}.md5"
    if memo.is_file():
        return memo.read_text().strip()
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    memo.parent.mkdir(exist_ok=True)
    tmp = memo.with_suffix(f".{id(digest)}.partial")
    tmp.write_text(digest.hexdigest())
    tmp.replace(memo)
    return digest.hexdigest()


def checksum_problem(path: Path, expected: str | None, source: str) -> str | None:
    """None if `path`'s md5 is `expected` (or nothing is expected); else what differs and where `expected` is from."""
    if expected is None:
        return None
    got = md5_of(path)
    if got == expected.lower():
        return None
    return (f"{path}: md5 {got} differs from the published {expected} ({source}); the file is corrupt, truncated or "
            "another release: download it again, or give option 'checksum' the md5 of the release you use")


def open_npz(path: Path, expected: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e}); expected {expected}") from e


def npz_member(zf: zipfile.ZipFile, key: str, path: Path, expected: str) -> zipfile.ZipInfo:
    """The zip entry of array `key`; DataError naming the arrays found and the file expected."""
    names = {n.removesuffix(".npy"): n for n in zf.namelist()}
    if key not in names:
        raise DataError(f"{path}: no array {key!r} in the .npz (found: {', '.join(sorted(names)) or 'none'}); "
                        f"expected {expected}")
    return zf.getinfo(names[key])


def read_npy_header(fh: io.BufferedIOBase, path: Path, key: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, header bytes) of the .npy member open as `fh` (positioned at the data afterwards)."""
    try:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(fh)
    except ValueError as e:
        raise DataError(f"{path}: array {key!r} is not a readable .npy member ({e})") from e
    if fortran:
        raise DataError(f"{path}: array {key!r} is stored in Fortran order; expected C order")
    return tuple(shape), np.dtype(dtype), fh.tell()
