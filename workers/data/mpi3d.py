"""MPI3D (Gondal et al., NeurIPS 2019): the official `.npz` releases of toy, realistic and real-world complex.

Each release holds one array `images`, uint8 (N, 64, 64, 3), every factor combination once in C order (the
last factor fastest), as the authors' README states (github.com/rr-learning/disentanglement_dataset):

    toy, realistic   object_color 6 × object_shape 6 × object_size 2 × camera_height 3 × background_color 3 ×
                     horizontal_axis 40 × vertical_axis 40 = 1,036,800 images (12.7 GB)
    complex          object_color 4 × object_shape 4 (coffee-cup, tennis-ball, croissant, beer-cup) × the same
                     five others = 460,800 images (5.7 GB)

The images are copied once into the node cache as they are (uint8 rows, the Shapes3D form), so a node holds
one copy whatever the number of trials. The file is checked before anything is cached: the array's name,
shape and dtype, its size (a truncated download is refused) and its md5 against the published one where
one exists (hashed once per node and remembered by the file's identity).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import DataError
from .cache import cached_array, file_identity, fill_in_chunks
from .files import check_file, checksum_problem, npz_member, open_npz, read_npy_header, refuse
from .shapes3d import decode_hwc
from .stored import StoredGridDataset

FORMAT_VERSION = 1
IMAGE = 64
FACTOR_NAMES = ["object_color", "object_shape", "object_size", "camera_height", "background_color",
                "horizontal_axis", "vertical_axis"]
_DISENT = ("md5 of the release at storage.googleapis.com/disentanglement_dataset/Final_Dataset, as nmichlo/disent "
           "records it")


@dataclass(frozen=True)
class Release:
    file: str
    factor_sizes: tuple[int, ...]
    md5: str | None  # published md5 of the whole file; None where none is published

    @property
    def images(self) -> int:
        return int(np.prod(self.factor_sizes))


RELEASES: dict[str, Release] = {
    "toy": Release("mpi3d_toy.npz", (6, 6, 2, 3, 3, 40, 40), "55889cb7c7dfc655d6e0277beee88868"),
    "realistic": Release("mpi3d_realistic.npz", (6, 6, 2, 3, 3, 40, 40), "59a6225b88b635365f70c91b3e52f70f"),
    "complex": Release("real-world complex shapes .npz", (4, 4, 2, 3, 3, 40, 40), None),
}


def _expected(release: str) -> str:
    r = RELEASES[release]
    return f"the official MPI3D {release} release ({r.file}) with array 'images' ({r.images}, 64, 64, 3) uint8"


def _header(path: Path, release: str) -> tuple[int, int]:
    """(offset of the image data in the member, member's stored size); DataError if the file is not the release."""
    r, expected = RELEASES[release], _expected(release)
    with open_npz(path, expected) as zf:
        info = npz_member(zf, "images", path, expected)
        with zf.open(info) as fh:
            shape, dtype, offset = read_npy_header(fh, path, "images")
    want = (r.images, IMAGE, IMAGE, 3)
    if shape != want or dtype != np.uint8:
        raise DataError(f"{path}: 'images' has shape {shape} and dtype {dtype}; expected {want} uint8 "
                        f"({' x '.join(map(str, r.factor_sizes))} factor combinations: {expected})")
    if info.file_size != offset + r.images * IMAGE * IMAGE * 3:
        raise DataError(f"{path}: 'images' holds {info.file_size - offset} bytes of image data; expected "
                        f"{r.images * IMAGE * IMAGE * 3} (a truncated or altered file)")
    return offset, info.file_size


def check_release(path: str, release: str, checksum: str | None = None) -> list[str]:
    """Problems with `path` as MPI3D `release` (one line each naming the file and what was expected); [] if fine.

    `checksum`: the md5 to expect instead of the published one (another release of the same data)."""
    try:
        p = check_file(path, _expected(release))
        _header(p, release)
    except DataError as e:
        return [str(e)]
    problem = checksum_problem(p, checksum or RELEASES[release].md5,
                               "given with option 'checksum'" if checksum else _DISENT)
    return [problem] if problem else []


def open_mpi3d(release: str, path: str, data_seed: int = 0, checksum: str | None = None) -> StoredGridDataset:
    """MPI3D `release` from the official `.npz` at `path`, converted once into the node cache."""
    refuse(check_release(path, release, checksum))
    p = Path(path).expanduser()
    r = RELEASES[release]
    offset, _ = _header(p, release)
    row = IMAGE * IMAGE * 3

    def build(out: np.ndarray) -> None:
        with open_npz(p, _expected(release)) as zf, zf.open(npz_member(zf, "images", p, "")) as fh:
            fh.seek(offset)

            def produce(a: int, b: int) -> np.ndarray:
                buf = fh.read(row * (b - a))
                if len(buf) != row * (b - a):
                    raise DataError(f"{p}: 'images' is truncated at image {a + len(buf) // row} of {r.images}")
                return np.frombuffer(buf, dtype=np.uint8).reshape(b - a, IMAGE, IMAGE, 3)

            fill_in_chunks(out, r.images, 8192, produce)

    key = f"mpi3d_{release}-file-{file_identity(p)}-v{FORMAT_VERSION}"
    rows = cached_array(key, (r.images, IMAGE, IMAGE, 3), np.uint8, build)
    sizes = list(r.factor_sizes)
    return StoredGridDataset(f"mpi3d_{release}", FACTOR_NAMES, sizes, [np.arange(float(s)) for s in sizes],
                             (3, IMAGE, IMAGE), rows, decode_hwc, None, data_seed, source=str(p))
