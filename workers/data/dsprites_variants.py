"""color-, noisy- and scream-dSprites: the dSprites variants of disentanglement_lib (Locatello et al., ICML 2019).

Same factors and grid as dSprites (procedural, or the official `.npz` with `path`); only the observation changes,
to 64×64 RGB (disentanglement_lib's `ColorDSprites`, `NoisyDSprites`, `ScreamDSprites`):

    color    the sprite in a colour c ~ U(0.5, 1)³ on black:                 x = sprite · c
    noisy    the white sprite over noise n ~ U(0, 1) per pixel and channel:   x = min(sprite + n, 1)
    scream   a 64×64 patch of the user's image (`image:`, e.g. Munch's The Scream; resized to fit 350×274 with
             PIL's thumbnail), at a uniformly drawn corner, averaged with a colour o ~ U(0, 1)³:
             b = (patch + o) / 2, and inverted on the sprite: x = 1 − b there, b elsewhere

disentanglement_lib draws c, n, the corner and o afresh at every draw of an observation. Here they are drawn once
per stored point, from a counter-based hash of (data_seed, variant, grid index), so that `observations(factors)`
is a function (the same factors give the same image in every process) and the whole grid fits the node cache;
each point's appearance has the distribution disentanglement_lib gives it. The images are quantised to 8 bits
like every stored image (c and the averages rounded to k/255; n on the 256 levels k/255, k uniform), and are
uint8 (64, 64, 3) rows in the node cache (9.1 GB per variant), decoded like Shapes3D's. The noise takes the 256
levels from the bytes of hashed 64-bit words (eight per word), so a noisy image costs 1,536 hashes, not 12,288.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import dsprites
from .base import DataError, GridDataset
from .cache import file_identity
from .files import check_file
from .perturbed import hashed_words, noise_levels
from .rendered import RenderedGridDataset
from .shapes3d import decode_hwc, decode_hwc_torch

if TYPE_CHECKING:
    import torch

GENERATOR_VERSION = 1
IMAGE = 64
VARIANTS = ("color", "noisy", "scream")
STREAMS = {"color": 0xC0105, "noisy": 0x2015E, "scream": 0x5C2EA}  # independent draws per variant
SCREAM_BOX = (350, 274)  # (width, height) the image is resized to fit, as disentanglement_lib does


def load_scream(path: str) -> np.ndarray:
    """uint8 (H, W, 3): the image at `path` resized to fit 350×274; DataError if it cannot serve."""
    from PIL import Image, UnidentifiedImageError

    p = check_file(path, "an image file (e.g. disentanglement_lib's scream.jpg) for the scream background")
    try:
        with Image.open(p) as img:
            pic = img.convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{p}: not a readable image ({e}); expected an image file (JPEG, PNG, ...) for the scream "
                        "background") from e
    pic.thumbnail(SCREAM_BOX)
    table = np.asarray(pic, dtype=np.uint8)
    if table.shape[0] <= IMAGE or table.shape[1] <= IMAGE:
        raise DataError(f"{p}: {table.shape[1]}×{table.shape[0]} pixels once resized to fit 350×274; expected more "
                        f"than {IMAGE} in both directions (64×64 patches are cut from it)")
    return table


def check_scream_image(path: str) -> list[str]:
    try:
        load_scream(path)
    except DataError as e:
        return [str(e)]
    return []


class DSpritesVariant(RenderedGridDataset):
    """A dSprites variant rendered from its base dSprites on demand, or read from the node cache."""

    factor_names = dsprites.FACTOR_NAMES
    factor_sizes: list[int | None] = list(dsprites.FACTOR_SIZES)
    factor_values = dsprites.FACTOR_VALUES
    observation_shape = (3, IMAGE, IMAGE)
    row_shape = (IMAGE, IMAGE, 3)
    build_chunk = 4096

    def __init__(self, variant: str, base: GridDataset, base_key: str, data_seed: int = 0,
                 scream: np.ndarray | None = None, scream_key: str = "") -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown dSprites variant {variant!r}")
        if (variant == "scream") != (scream is not None):
            raise ValueError("the scream variant, and only it, takes the background image")
        super().__init__()
        self.variant, self.base, self.scream = variant, base, scream
        self.name = f"{variant}_dsprites"
        self.data_seed = int(data_seed)
        self.source = f"{getattr(base, 'source', 'procedural')} as {variant}-dSprites"
        self.cache_key = f"{self.name}-{base_key}{scream_key}-seed{self.data_seed}-v{GENERATOR_VERSION}"
        if variant != "color":
            self.build_chunk = 1024  # 12,288 draws or patch pixels per image: the build's temporaries stay small

    def sprites(self, factors: np.ndarray) -> np.ndarray:
        """bool (n, 64, 64): the dSprites image (the sprite's pixels) of class indices (n, 5)."""
        if isinstance(self.base, dsprites.ProceduralDSprites):
            return dsprites.place_sprites(self.base.sprites, factors).astype(bool)
        return self.base.observations(factors)[:, 0] > 0.5

    def uniforms(self, factors: np.ndarray, k: int) -> np.ndarray:
        """float64 (n, k) in (0, 1), fixed per grid point by data_seed and the variant."""
        ids = self.factors_to_index(factors)
        return (noise_levels(self.data_seed, ids, k, STREAMS[self.variant]) + 1.0) / 2.0

    def byte_levels(self, factors: np.ndarray, k: int) -> np.ndarray:
        """uint8 (n, k) uniform on 0 … 255 (k a multiple of 8), fixed per grid point by data_seed and the variant:
        the eight bytes of each hashed word."""
        ids = self.factors_to_index(factors)
        words = hashed_words(self.data_seed, ids, k // 8, STREAMS[self.variant] ^ 0xB17E5)
        return np.ascontiguousarray(words).view(np.uint8).reshape(len(ids), k)

    def encode_rows(self, factors: np.ndarray) -> np.ndarray:
        """uint8 (n, 64, 64, 3) images of class indices (n, 5)."""
        f = np.asarray(factors, dtype=np.int64)
        n = f.shape[0]
        sprite = self.sprites(f)[..., None]
        if self.variant == "color":
            colour = np.rint(255.0 * (0.5 + 0.5 * self.uniforms(f, 3))).astype(np.uint8)
            return np.where(sprite, colour[:, None, None, :], np.uint8(0))
        if self.variant == "noisy":
            levels = self.byte_levels(f, IMAGE * IMAGE * 3).reshape(n, IMAGE, IMAGE, 3)
            return np.where(sprite, np.uint8(255), levels)
        u = self.uniforms(f, 5)
        h, w = self.scream.shape[:2]
        top = np.floor(u[:, 0] * (h - IMAGE)).astype(np.int64)
        left = np.floor(u[:, 1] * (w - IMAGE)).astype(np.int64)
        windows = np.lib.stride_tricks.sliding_window_view(self.scream, (IMAGE, IMAGE), axis=(0, 1))
        patch = windows[top, left].transpose(0, 2, 3, 1)  # (n, 64, 64, 3): the 64×64 patch at (top, left)
        b255 = patch.astype(np.float32)
        b255 += (255.0 * u[:, None, None, 2:5]).astype(np.float32)
        b255 *= np.float32(0.5)
        np.subtract(np.float32(255), b255, out=b255, where=sprite)  # 255·b, and 255·(1 − b) on the sprite
        return np.rint(b255, out=b255).astype(np.uint8)

    def render_observations(self, factors: np.ndarray) -> np.ndarray:
        return decode_hwc(self.encode_rows(factors))

    def decode_rows(self, rows: np.ndarray) -> np.ndarray:
        return decode_hwc(rows)

    def decode_rows_torch(self, rows: torch.Tensor) -> torch.Tensor:
        return decode_hwc_torch(rows)


def open_variant(variant: str, path: str | None = None, data_seed: int = 0,
                 image: str | None = None) -> DSpritesVariant:
    """`variant`-dSprites on procedural dSprites, or on the official dSprites file at `path`."""
    base = dsprites.open_dsprites(path, data_seed)
    base_key = base.cache_key if path is None else f"file-{file_identity(Path(path).expanduser())}"
    if variant != "scream":
        return DSpritesVariant(variant, base, base_key, data_seed)
    if image is None:
        raise DataError("scream_dsprites: option 'image' is required (the background image, e.g. scream.jpg)")
    scream_key = f"-img-{file_identity(Path(image).expanduser())}"
    return DSpritesVariant(variant, base, base_key, data_seed, load_scream(image), scream_key)


def open_color_dsprites(path: str | None = None, data_seed: int = 0) -> DSpritesVariant:
    return open_variant("color", path, data_seed)


def open_noisy_dsprites(path: str | None = None, data_seed: int = 0) -> DSpritesVariant:
    return open_variant("noisy", path, data_seed)


def open_scream_dsprites(image: str, path: str | None = None, data_seed: int = 0) -> DSpritesVariant:
    return open_variant("scream", path, data_seed, image)
