"""Altered datasets of thesis §4.3: an optimised perturbation (`perturbation: <folder>`) or uniform noise (`noise: ε`).

Both wrap the base dataset: factors, factor sizes, the stored points, their number and the 80/10/10 split are
the base dataset's (the split depends on data_seed and the size only); only the observations change, and by at
most ε per element: ‖x' − x‖∞ ≤ ε on every observation, checked in float64 on the float32 values returned.

Perturbation (thesis §4.2.4, §4.3.1), with m and ε from the folder (perturbation_folder.py):

    δ(w) = ε · round(127 · m(w)) / 127          m evaluated in float64 (CUDA if the process has it), ‖m‖∞ ≤ 1
    x'   = x + δ(w)
    x'   ← x' − 2 ReLU(x' − 1) + 2 ReLU(−x')     images in [0, 1] only (reflects back into [0, 1]); the
                                                 synthetic vectors are unbounded and keep x + δ as it is

m is stored per element as one of 255 levels (int8, steps of ε/127, finer than Shapes3D's own 1/255 pixel
levels): float64 round-off that depends on the batch or the device a point is computed on cannot change a level
(short of an exact tie), so a point's x' is the same whichever batch, call, process or device computes it, and
the levels of a whole grid fit a node cache of one byte per element (dSprites 3.0 GB, Shapes3D 5.9 GB; see
`_maybe_cache`). Cost of m in float64 on one CPU core: ~5.5 ms per 64×64 image (dSprites grid: ~70 core-minutes
for the node cache); on a GPU a training split takes seconds.

Noise (thesis §4.3.3): every element gets u ∈ (−1, 1), uniform on 2^24 levels, from a counter-based hash
(splitmix64) of (data_seed, point, element), δ = ε·u, normalised like x'. The point is the grid index of its
factors on the grids (so `observations(factors)` and `observations_at(index)` agree, and any subset is drawn
without generating the others) and, on the synthetic sets with continuous factors, a hash of the float64 bits
of its factor values (the same factors give the same noise).

The final float32 is rounded toward x where rounding alone would leave ‖x' − x‖∞ ≤ ε by half a unit in the last
place, so the bound holds exactly.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import numpy as np

from workers.store.layout import filesystem, join_uri

from .base import DataError, Dataset, as_indices
from .cache import cache_dir, cached_array, fill_in_chunks
from .perturbation_folder import QUANT_LEVELS, WEIGHTS_FILE, FolderError, read_meta
from .perturbation_network import encode_factors, manipulation
from .rendered import cache_mode

CHUNK = 512  # points per float64 forward pass of m on a CPU (conv activations: ~130 MB); 8x that on CUDA
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_NOISE_STREAM = np.uint64(0x6E015E)


def bounded(x: np.ndarray, delta: np.ndarray, eps: float, reflect: bool) -> np.ndarray:
    """float32 x + delta (|delta| ≤ eps), reflected into [0, 1] if `reflect`, with |x' − x| ≤ eps exactly."""
    x64 = x.astype(np.float64)
    y = x64 + delta
    if reflect:
        y = y - 2.0 * np.maximum(y - 1.0, 0.0) + 2.0 * np.maximum(-y, 0.0)
    out = y.astype(np.float32)
    bad = np.abs(out.astype(np.float64) - x64) > eps
    if bad.any():
        out[bad] = np.nextafter(out[bad], x[bad])
    return out


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * _M1
        x = x ^ (x >> np.uint64(27))
        x = x * _M2
        return x ^ (x >> np.uint64(31))


def hashed_words(data_seed: int, point_ids: np.ndarray, n_words: int, stream: int = int(_NOISE_STREAM)) -> np.ndarray:
    """uint64 (n, n_words) of uniformly random bits: a pure function of (data_seed, stream, point id, word); other
    streams give independent draws for other uses of the same points."""
    seed_key = _mix(np.array([int(data_seed) % 2**64], dtype=np.uint64) ^ np.uint64(stream))
    with np.errstate(over="ignore"):
        keys = _mix(_mix(point_ids.astype(np.uint64) + _GOLDEN) ^ seed_key)
        counters = np.arange(1, n_words + 1, dtype=np.uint64) * _GOLDEN
        return _mix(keys[:, None] + counters[None, :])


def noise_levels(data_seed: int, point_ids: np.ndarray, n_elements: int,
                 stream: int = int(_NOISE_STREAM)) -> np.ndarray:
    """float64 (n, n_elements) uniform in (−1, 1) on 2^24 levels: the top 24 bits of `hashed_words`."""
    bits = hashed_words(data_seed, point_ids, n_elements, stream) >> np.uint64(40)
    return (2.0 * bits.astype(np.float64) + 1.0) / 2.0**24 - 1.0


def factor_hash(factors: np.ndarray) -> np.ndarray:
    """uint64 (n,) of the float64 bits of continuous factors (n, K)."""
    v = np.ascontiguousarray(factors, dtype=np.float64).view(np.uint64)
    h = np.zeros(v.shape[0], dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(v.shape[1]):
            h = _mix(h ^ (v[:, k] + np.uint64(k + 1) * _GOLDEN))
    return h


class AlteredDataset(Dataset):
    """The base dataset with altered observations; everything else is the base's (attributes too)."""

    def __init__(self, base: Dataset, eps: float):
        self.base = base
        self.name = base.name
        self.factor_names, self.factor_sizes = base.factor_names, base.factor_sizes
        self.observation_shape = tuple(base.observation_shape)
        self.data_seed = base.data_seed
        self.eps = float(eps)
        self.reflect = len(self.observation_shape) == 3  # images in [0, 1]; vectors are unbounded
        self.on_grid = hasattr(base, "factors_to_index") and all(s is not None for s in base.factor_sizes)

    # the base's stored rows are not this dataset's observations: its row and cache methods stay hidden
    _HIDDEN = frozenset({"base", "rows_at", "prepare_rows", "encode_rows", "decode_rows", "decode_rows_torch",
                         "build_cache", "render", "render_observations", "uses_cache"})

    def __getattr__(self, name: str) -> Any:  # factor_values, factors_to_index, source, ... of the base
        if name in AlteredDataset._HIDDEN:
            raise AttributeError(f"{type(self).__name__} has no {name!r} (the unaltered rows are the base's)")
        return getattr(self.base, name)

    def __len__(self) -> int:
        return len(self.base)

    def factors_at(self, indices: np.ndarray) -> np.ndarray:
        return self.base.factors_at(indices)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.base.sample_factors(n, rng)

    def split_indices(self, part: str) -> np.ndarray:
        return self.base.split_indices(part)

    def observations_at(self, indices: np.ndarray) -> np.ndarray:
        idx = as_indices(indices, len(self))
        return self._alter(self.base.observations_at(idx), self.base.factors_at(idx))

    def observations(self, factors: np.ndarray) -> np.ndarray:
        return self._alter(self.base.observations(factors), np.asarray(factors))

    def delta(self, factors: np.ndarray) -> np.ndarray:
        """float64 (n, *obs) ε-bounded change before normalisation."""
        raise NotImplementedError

    def _alter(self, x: np.ndarray, factors: np.ndarray) -> np.ndarray:
        return bounded(x, self.delta(factors), self.eps, self.reflect)

    def grid_index(self, factors: np.ndarray) -> np.ndarray:
        return self.base.factors_to_index(factors)


class NoisyDataset(AlteredDataset):
    """x' = x + ε·u, u uniform per element, fixed per stored point by data_seed (see the module docstring)."""

    def __init__(self, base: Dataset, eps: float):
        super().__init__(base, eps)
        self.source = getattr(base, "source", base.name) + f" + noise {self.eps:g}"

    def delta(self, factors: np.ndarray) -> np.ndarray:
        f = np.asarray(factors)
        ids = self.grid_index(f) if self.on_grid else factor_hash(f)
        n_el = int(np.prod(self.observation_shape))
        return (self.eps * noise_levels(self.data_seed, ids, n_el)).reshape(f.shape[0], *self.observation_shape)


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    with fs.open_input_stream(path) as f:
        return f.read()


def load_manipulation(folder: str, meta: dict[str, Any]) -> tuple[Any, str]:
    """(the float64 CPU module m, sha256 of its weights) of a folder; DataError if the weights changed."""
    import torch

    weights = meta.get("weights") or {}
    try:
        blob = read_bytes(join_uri(folder, weights.get("file", WEIGHTS_FILE)))
    except OSError as e:
        raise DataError(f"option 'perturbation': {folder}: {weights.get('file', WEIGHTS_FILE)} cannot be read "
                        f"({str(e).splitlines()[0]}); copy the whole folder or re-run `orthosweep perturb`") from e
    sha = hashlib.sha256(blob).hexdigest()
    if weights.get("sha256") != sha:
        raise DataError(f"option 'perturbation': {folder}: the weights' sha256 {sha[:16]}… differs from the "
                        f"{str(weights.get('sha256'))[:16]}… perturbation.yaml records (the folder was altered "
                        "after `orthosweep perturb` wrote it); re-run `orthosweep perturb` into a new folder")
    arch = meta["architecture"]
    net = manipulation(tuple(arch["observation_shape"]), int(arch["num_factors"]))
    net.load_state_dict(torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu"))
    return net.double().eval(), sha


class PerturbedDataset(AlteredDataset):
    """x' = x + ε·m(w) with m from a perturbation folder (see the module docstring)."""

    def __init__(self, base: Dataset, perturbation: str, meta: tuple[str, dict[str, Any]] | None = None):
        """`meta`: (folder, perturbation.yaml's mapping) when already known (the writer, before the yaml exists)."""
        try:
            folder, meta_ = meta if meta is not None else read_meta(perturbation)
        except FolderError as e:
            raise DataError(f"option 'perturbation': {e}") from e
        meta = meta_
        if meta.get("dataset") != base.name:
            raise DataError(f"option 'perturbation': {perturbation!r} was made for {meta.get('dataset')!r}, "
                            f"not {base.name!r}")
        super().__init__(base, float(meta["epsilon"]))
        self.folder, self.meta = folder, meta
        self.levels_per_unit = int(meta.get("quantisation", {}).get("levels", QUANT_LEVELS))
        self.net, self.sha256 = load_manipulation(folder, meta)
        self.source = getattr(base, "source", base.name) + f" + perturbation {perturbation}"
        self._cache: np.ndarray | None = None
        self.computed = 0  # points whose m this process computed on demand

    def levels(self, factors: np.ndarray) -> np.ndarray:
        """int8 (n, *obs) round(127·m(w)) of factors (n, K)."""
        f = np.asarray(factors)
        if self.on_grid:
            if self._cache is None:
                self._maybe_cache()
            if self._cache is not None:
                return np.asarray(self._cache[self.grid_index(f)])
        self.computed += f.shape[0]
        return self._compute(f)

    def _compute(self, factors: np.ndarray) -> np.ndarray:
        import torch

        w = encode_factors(factors, self.factor_sizes)
        out = np.empty((w.shape[0], *self.observation_shape), dtype=np.int8)
        device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
        if next(self.net.parameters()).device != device:
            self.net = self.net.to(device)
        chunk = CHUNK * (8 if device.type == "cuda" else 1)
        with torch.no_grad():
            for a in range(0, w.shape[0], chunk):
                m = self.net(torch.from_numpy(np.ascontiguousarray(w[a:a + chunk])).to(device)).cpu().numpy()
                out[a:a + chunk] = np.rint(m * self.levels_per_unit).astype(np.int8)
        return out

    def _maybe_cache(self) -> None:
        """The node cache of the whole grid's levels (built once per node, shared): used when it exists; built
        once this process has computed an eighth of the grid on demand (a training epoch reads 80 % of it; metrics,
        contact sheets and the GPU, which computes m in float64 in seconds, stay below), at once with
        ORTHOSWEEP_DATA_CACHE=always, never with =never."""
        mode = cache_mode()
        n = int(np.prod(self.factor_sizes))
        key = f"perturbation-{self.sha256[:16]}-{self.name}-v1"
        if mode == "never" or not (mode == "always" or 8 * self.computed >= n or (cache_dir() / f"{key}.npy").exists()):
            return

        def produce(a: int, b: int) -> np.ndarray:
            f = np.stack(np.unravel_index(np.arange(a, b), self.factor_sizes), axis=1)
            return self._compute(f)

        self._cache = cached_array(key, (n, *self.observation_shape), np.int8,
                                   lambda out: fill_in_chunks(out, n, 4096, produce), wait=True)

    def delta(self, factors: np.ndarray) -> np.ndarray:
        return self.levels(factors).astype(np.float64) * (self.eps / self.levels_per_unit)
