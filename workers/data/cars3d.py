"""Cars3D (Reed et al., NeurIPS 2015, "Deep Visual Analogy-Making") from the official `.mat` renders.

The user gives the `cars` folder of the release (nips2015-analogy-data.tar.gz, data/cars): 183 files
`car_NNN_mesh.mat`, each a MATLAB v5 file whose array `im` is uint8 (128, 128, 3, 24, 4): height, width, RGB,
24 azimuths, 4 elevations. Factors as disentanglement_lib orders them: elevation 4 × azimuth 24 × object_type 183
= 17,568 images, last factor fastest; the object type is the file's rank in name order. Each image is resized
to 64×64 with Lanczos filtering (as disentanglement_lib does) and stored in the node cache as uint8.

No checksum is published for the single files; the folder is checked before anything is cached: the number
and names of the files and each file's `im` (name, shape, type, read from the MATLAB headers only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import DataError
from .cache import cached_array
from .files import check_folder, files_identity, refuse, resize_lanczos
from .shapes3d import decode_hwc
from .stored import StoredGridDataset

FORMAT_VERSION = 1
IMAGE, SOURCE_IMAGE = 64, 128
FACTOR_NAMES = ["elevation", "azimuth", "object_type"]
FACTOR_SIZES = [4, 24, 183]
MESH = (SOURCE_IMAGE, SOURCE_IMAGE, 3, 24, 4)
EXPECTED = ("the official Cars3D `cars` folder: 183 files car_NNN_mesh.mat, each holding 'im' uint8 "
            f"{MESH} (height, width, RGB, azimuth, elevation)")


def mesh_files(folder: Path) -> list[Path]:
    """The car files in name order (object types 0 … 182); DataError unless there are exactly 183."""
    files = sorted(folder.glob("car_*_mesh.mat"))
    if len(files) != FACTOR_SIZES[2]:
        raise DataError(f"{folder}: holds {len(files)} files car_*_mesh.mat; expected {EXPECTED}")
    return files


def check_mesh(path: Path) -> None:
    """DataError naming `path` unless its MATLAB header declares `im` as uint8 of the published shape."""
    from scipy.io import whosmat

    try:
        found = {name: (tuple(shape), cls) for name, shape, cls in whosmat(str(path))}
    except (ValueError, OSError, TypeError) as e:
        raise DataError(f"{path}: not a readable MATLAB v5 file ({e}); expected one of {EXPECTED}") from e
    if "im" not in found:
        raise DataError(f"{path}: no array 'im' (found: {', '.join(sorted(found)) or 'none'}); expected {EXPECTED}")
    if found["im"] != (MESH, "uint8"):
        raise DataError(f"{path}: 'im' is {found['im'][1]} {found['im'][0]}; expected uint8 {MESH}")


def check_cars_folder(path: str) -> list[str]:
    """Problems with `path` as the Cars3D folder (one line naming the file and what was expected); [] if fine."""
    try:
        for f in mesh_files(check_folder(path, EXPECTED)):
            check_mesh(f)
    except DataError as e:
        return [str(e)]
    return []


def read_mesh(path: Path) -> np.ndarray:
    """uint8 (4, 24, 64, 64, 3): the file's renders by (elevation, azimuth), resized to 64×64."""
    from scipy.io import loadmat

    try:
        im = loadmat(str(path), variable_names=["im"])["im"]
    except (ValueError, OSError, TypeError) as e:
        raise DataError(f"{path}: 'im' cannot be read ({e}); the file looks truncated or corrupt") from e
    renders = im.transpose(4, 3, 0, 1, 2).reshape(4 * 24, SOURCE_IMAGE, SOURCE_IMAGE, 3)  # (elevation, azimuth)
    return resize_lanczos(renders, IMAGE).reshape(4, 24, IMAGE, IMAGE, 3)


def open_cars3d(path: str, data_seed: int = 0) -> StoredGridDataset:
    """Cars3D from the official folder `path`, converted once into the node cache."""
    refuse(check_cars_folder(path))
    folder = Path(path).expanduser()
    files = mesh_files(folder)
    n = int(np.prod(FACTOR_SIZES))

    def build(out: np.ndarray) -> None:
        grid = out.reshape(4, 24, FACTOR_SIZES[2], IMAGE, IMAGE, 3)
        for obj, f in enumerate(files):
            grid[:, :, obj] = read_mesh(f)

    key = f"cars3d-files-{files_identity(files)}-v{FORMAT_VERSION}"
    rows = cached_array(key, (n, IMAGE, IMAGE, 3), np.uint8, build)
    return StoredGridDataset("cars3d", FACTOR_NAMES, list(FACTOR_SIZES), [np.arange(float(s)) for s in FACTOR_SIZES],
                             (3, IMAGE, IMAGE), rows, decode_hwc, None, data_seed, source=str(folder))
