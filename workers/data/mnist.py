"""MNIST and Fashion-MNIST from files the user points to: IDX (gzipped or not) or `.npz`.

`path` may be
- a directory holding the official IDX files (`train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`,
  `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`; every images/labels pair found is used),
- one IDX images file (its labels file is the same name with `images-idx3` → `labels-idx1`), or
- an `.npz` with `x_train`, `y_train` (and optionally `x_test`, `y_test`), as Keras ships it.

All images found are pooled and split 80/10/10 by `data_seed` like every dataset (thesis §3.3.1).
There are no generative factors (factor metrics are null); labels are kept (`labels_at`).
Images are (1, 28, 28) float32 in [0, 1]; the uint8 pixels (55 MB for 70,000) stay in memory.
"""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np

from .base import DataError, Dataset, as_indices
from .files import check_file

SIDE = 28
_IDX_DTYPES = {0x08: np.uint8}
_PAIRS = (("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))


def read_idx(path: Path) -> np.ndarray:
    """The array in an IDX file (gzipped or not): magic 0x0000TTNN, NN big-endian int32 dims, then data."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot be read as a (gzipped) IDX file ({e})") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file of unsigned bytes (magic {raw[:4].hex() or 'missing'}; "
                        "expected 00000801 for labels or 00000803 for images)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path}: IDX header announces {ndim} dimensions but the file ends inside the header")
    dims = tuple(int(d) for d in np.frombuffer(raw[4:4 + 4 * ndim], dtype=">i4"))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if len(dims) != ndim or data.size != int(np.prod(dims)):
        raise DataError(f"{path}: IDX header says shape {dims} but the file holds {data.size} values; "
                        "the file is truncated or corrupt")
    return data.reshape(dims)


def _check_pair(images: np.ndarray, labels: np.ndarray, source: str) -> None:
    if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
        raise DataError(f"{source}: images have shape {images.shape}; expected (N, 28, 28)")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(f"{source}: labels have shape {labels.shape}; expected ({images.shape[0]},), one per image")


def _idx_file(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def read_images_and_labels(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 28, 28) and int64 labels (N,) from a directory, an IDX images file or an .npz."""
    p = Path(path).expanduser()
    pairs: list[tuple[np.ndarray, np.ndarray, str]] = []
    if p.is_dir():
        for img_stem, lab_stem in _PAIRS:
            img, lab = _idx_file(p, img_stem), _idx_file(p, lab_stem)
            if img is None and lab is None:
                continue
            if img is None or lab is None:
                raise DataError(f"{p}: found {(img or lab).name} but not its "
                                f"{'images' if img is None else 'labels'} file {img_stem if img is None else lab_stem}"
                                "[.gz]")
            pairs.append((read_idx(img), read_idx(lab), f"{img.name} / {lab.name}"))
        if not pairs:
            raise DataError(f"{p}: no IDX files in this directory; expected {_PAIRS[0][0]}[.gz] and "
                            f"{_PAIRS[0][1]}[.gz] (and/or the t10k pair), or give an .npz file")
    elif p.suffix == ".npz":
        pairs = _read_npz(check_file(p, "an .npz with x_train, y_train"))
    else:
        img = check_file(p, "an IDX images file, a directory of IDX files, or an .npz")
        lab_name = img.name.replace("images-idx3", "labels-idx1")
        if lab_name == img.name:
            raise DataError(f"{img}: cannot tell its labels file; expected an images file named like "
                            f"{_PAIRS[0][0]}[.gz] (labels: {_PAIRS[0][1]}[.gz]) or a directory")
        lab = check_file(img.with_name(lab_name), f"the labels file next to {img.name}")
        pairs.append((read_idx(img), read_idx(lab), f"{img.name} / {lab.name}"))
    for images, labels, source in pairs:
        _check_pair(images, labels, source)
    return (np.concatenate([a for a, _, _ in pairs]),
            np.concatenate([b for _, b, _ in pairs]).astype(np.int64))


def _read_npz(path: Path) -> list[tuple[np.ndarray, np.ndarray, str]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            if not {"x_train", "y_train"} <= keys:
                raise DataError(f"{path}: keys {sorted(keys)}; expected x_train, y_train (and optionally "
                                "x_test, y_test)")
            out = [(z["x_train"], z["y_train"], f"{path.name}: x_train / y_train")]
            if {"x_test", "y_test"} <= keys:
                out.append((z["x_test"], z["y_test"], f"{path.name}: x_test / y_test"))
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from e
    for images, _, source in out:
        if images.dtype != np.uint8:
            raise DataError(f"{source}: images have dtype {images.dtype}; expected uint8 pixels 0..255")
    return out


class LabelledImages(Dataset):
    """Images without generative factors (MNIST, Fashion-MNIST): DtO and losses only."""

    factor_names: list[str] = []
    factor_sizes: list[int | None] = []
    observation_shape = (1, SIDE, SIDE)

    def __init__(self, name: str, path: str, data_seed: int = 0) -> None:
        self.name, self.source, self.data_seed = name, str(path), int(data_seed)
        self._images, self._labels = read_images_and_labels(path)

    def __len__(self) -> int:
        return self._images.shape[0]

    def labels_at(self, indices: np.ndarray) -> np.ndarray:
        """int64 (n,) class labels (digits / clothing types) of the stored points."""
        return self._labels[as_indices(indices, len(self))]

    def factors_at(self, indices: np.ndarray) -> np.ndarray:
        return np.zeros((as_indices(indices, len(self)).size, 0), dtype=np.int64)

    def observations_at(self, indices: np.ndarray) -> np.ndarray:
        rows = self._images[as_indices(indices, len(self))]
        return (rows.astype(np.float32) / np.float32(255))[:, None]

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise DataError(f"{self.name} has no generative factors; factor metrics do not apply (they are null)")

    def observations(self, factors: np.ndarray) -> np.ndarray:
        raise DataError(f"{self.name} has no generative factors; observations exist only for stored points")


def open_mnist(path: str, data_seed: int = 0) -> LabelledImages:
    return LabelledImages("mnist", path, data_seed)


def open_fashion_mnist(path: str, data_seed: int = 0) -> LabelledImages:
    return LabelledImages("fashion_mnist", path, data_seed)
