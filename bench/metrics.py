"""Metric benchmarks, side by side in one run (issue 5). Usage:

    .venv/bin/python bench/metrics.py            # default sizes (disentanglement_lib's; takes many minutes)
    .venv/bin/python bench/metrics.py --quick    # reduced sizes, a smoke run of the same comparisons

Prints, with the machine (nproc, CPU model, load average — the machine may be shared):
1. DtO's nearest signed permutation: batched linear assignment vs the thesis MILP (OR-Tools SCIP) on the
   same random orthogonal matrices (d = 2…10): speed ratio and an equality check.
2. Every metric's wall time at default sizes for a 10-latent code on dSprites-sized factors
   (3, 6, 40, 32, 32), including DtO's Jacobians of the paper's dSprites MLP decoder.
3. DCI (workers/metrics/gbt.py, threaded) vs a straightforward single-process implementation of the same definition.
4. All metrics of one checkpoint vs one training epoch of the paper's dSprites MLP (extrapolated from
   timed steps), the issue's 10 % target.
5. The encoder cost FactorVAE and BetaVAE add with the paper's dSprites MLP encoder (not in [2]).
6. DtO's decoder Jacobians (`decoder_gram`) on a CPU in chunks sized by the decoder's largest per-point tensor
   (the default) vs by its output (the rule before, 2^24 floats), for the paper's dSprites MLP decoder and
   disentanglement_lib's conv decoder, with an equality check.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch
from machine import describe  # bench/machine.py (the script's folder is on sys.path)
from scipy.stats import ortho_group

from workers.metrics.betavae import betavae_score
from workers.metrics.dci import completeness, dci, disentanglement, importance_matrix_sklearn
from workers.metrics.discrete import factor_classes
from workers.metrics.ds import ds
from workers.metrics.dto import (
    decoder_gram,
    jacobian_metrics,
    largest_per_point,
    nearest_signed_permutation,
    nearest_signed_permutation_milp,
)
from workers.metrics.factorvae import factorvae_score
from workers.metrics.gbt import default_threads
from workers.metrics.mig import mig, mig_sup
from workers.metrics.polarized import polarized
from workers.metrics.sap import sap

DSPRITES_SIZES = (3, 6, 40, 32, 32)
LATENT = 10


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


# ---- 1. assignment vs MILP ----------------------------------------------------------------------

def bench_assignment(n: int) -> None:
    sizes = np.arange(2, 11)
    per = [n // len(sizes) + (i < n % len(sizes)) for i in range(len(sizes))]
    mats = [ortho_group.rvs(int(d), size=max(k, 2), random_state=int(d))[:k] for d, k in zip(sizes, per, strict=True)]
    t_fast = t_milp = 0.0
    equal = 0
    for V in mats:
        dt, P = timed(lambda V=V: nearest_signed_permutation(V))
        t_fast += dt
        dt, Pm = timed(lambda V=V: np.stack([nearest_signed_permutation_milp(v) for v in V]))
        t_milp += dt
        equal += int(np.sum(np.all(P == Pm, axis=(1, 2))))
    print(f"[1] nearest signed permutation on {n} random orthogonal matrices (d=2..10):")
    print(f"    assignment {t_fast:.3f}s  MILP (OR-Tools SCIP) {t_milp:.1f}s  speed-up {t_milp / t_fast:.0f}x  "
          f"identical P: {equal}/{n}")


# ---- 2. every metric at default sizes -------------------------------------------------------------

class ArrayFactors:
    """dSprites-sized discrete factors whose 'observations' are the factors themselves (float32), so the
    intervention scores are timed without an image renderer or an encoder network."""

    def __init__(self, sizes=DSPRITES_SIZES):
        self.factor_sizes = list(sizes)
        self.num_factors = len(sizes)

    def sample_factors(self, n, rng):
        return rng.integers(0, self.factor_sizes, size=(n, self.num_factors))

    def observations(self, factors):
        return np.asarray(factors, dtype=np.float32)


def linear_code(seed: int = 0):
    """A fixed 10-latent code of 5 factors: a random linear mix plus noise (encode: (n, 5) -> (n, 10))."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(len(DSPRITES_SIZES), LATENT)) / np.array(DSPRITES_SIZES)[:, None]
    noise = np.random.default_rng(seed + 1)
    return lambda f: np.asarray(f, dtype=np.float64) @ A + 0.05 * noise.normal(size=(len(f), LATENT))


def dsprites_decoder() -> torch.nn.Module:
    """The paper's dSprites MLP decoder (thesis Table 3.1): 10 -> 1200-1200-1200 tanh -> 4096 sigmoid."""
    torch.manual_seed(0)
    layers, w = [], LATENT
    for _ in range(3):
        layers += [torch.nn.Linear(w, 1200), torch.nn.Tanh()]
        w = 1200
    return torch.nn.Sequential(*layers, torch.nn.Linear(w, 64 * 64), torch.nn.Sigmoid()).eval()


def bench_metrics(n_eval: int, n_train: int, n_test: int) -> tuple[dict[str, float], Any]:
    rng = np.random.default_rng(0)
    data = ArrayFactors()
    encode = linear_code()
    f_eval = data.sample_factors(n_eval, rng)
    c_eval = encode(f_eval)
    f_tr, f_te = data.sample_factors(n_train, rng), data.sample_factors(n_test, rng)
    c_tr, c_te = encode(f_tr), encode(f_te)
    logvar = np.log(rng.uniform(0.01, 1.0, size=c_eval.shape))
    decoder = dsprites_decoder()
    mu_t = torch.as_tensor(c_eval, dtype=torch.float32)
    active = np.ones(LATENT, dtype=bool)
    runs: dict[str, Callable[[], Any]] = {
        "polarized": lambda: polarized(c_eval, logvar),
        "dto+c_ima (MLP Jacobians)": lambda: jacobian_metrics(decoder, mu_t, active=active),
        "ds": lambda: ds(c_eval, f_eval, discrete=[True] * 5, seed=0),
        "mig": lambda: mig(c_eval, f_eval),
        "mig_sup": lambda: mig_sup(c_eval, f_eval),
        "dci": lambda: dci(c_tr, f_tr, c_te, f_te, seed=0),
        "sap": lambda: sap(c_tr, f_tr, c_te, f_te),
        "factorvae": lambda: factorvae_score(encode, data, seed=0, num_train=n_train, num_eval=n_test,
                                             num_variance_estimate=n_train),
        "betavae": lambda: betavae_score(encode, data, seed=0, num_train=n_train, num_eval=n_test),
    }
    print(f"[2] wall time per metric: {LATENT}-latent code, factors {DSPRITES_SIZES}, n_eval={n_eval}, "
          f"supervised {n_train}/{n_test}, DCI's GBTs on {default_threads()} threads")
    times, results = {}, {}
    for name, fn in runs.items():
        times[name], results[name] = timed(fn)
        print(f"    {name:<28s} {times[name]:8.2f}s", flush=True)
    print(f"    {'total':<28s} {sum(times.values()):8.2f}s")
    return times, ((c_tr, f_tr, c_te, f_te), results["dci"], times["dci"])


# ---- 3. DCI vs a straightforward implementation ----------------------------------------------------

def dci_straightforward(c_tr, f_tr, c_te, f_te, seed: int) -> dict[str, float]:
    """The definition as disentanglement_lib writes it: scikit-learn's GBT per factor, one after the other
    (`importance_matrix_sklearn`, the reference the tests compare gbt.py against)."""
    classes = factor_classes(np.concatenate([f_tr, f_te]))
    R, acc_tr, acc_te = importance_matrix_sklearn(c_tr, classes[:len(f_tr)], c_te, classes[len(f_tr):], seed=seed)
    return {"dci_disentanglement": disentanglement(R), "dci_completeness": completeness(R),
            "dci_informativeness_train": acc_tr, "dci_informativeness_test": acc_te}


def bench_dci(data: tuple, new: dict[str, Any], t_new: float) -> None:
    """The straightforward implementation on the same codes as [2]'s DCI run (whose time is reused)."""
    c_tr, f_tr, c_te, f_te = data
    n_train, n_test = len(c_tr), len(c_te)
    t_ref, ref = timed(lambda: dci_straightforward(c_tr, f_tr, c_te, f_te, seed=0))
    diff = max(abs(ref[k] - new[k]) for k in ref)
    print(f"[3] DCI on {n_train}/{n_test} points: straightforward single process {t_ref:.1f}s, "
          f"workers.metrics.dci (gbt.py, {default_threads()} threads) {t_new:.1f}s, speed-up {t_ref / t_new:.2f}x, "
          f"max |difference| of the four scores {diff:.2e} (same tree seed)")


# ---- 4. one checkpoint's metrics vs one training epoch ---------------------------------------------

def bench_epoch(steps: int) -> float:
    """Seconds per epoch of the paper's dSprites MLP (Table 3.1, latent 10, batch 64, Adagrad 1e-2, 80 %
    of 737,280 images), extrapolated from `steps` timed steps on random binary images."""
    torch.manual_seed(0)
    enc = torch.nn.Sequential(torch.nn.Linear(4096, 1200), torch.nn.ReLU(), torch.nn.Linear(1200, 1200),
                              torch.nn.ReLU(), torch.nn.Linear(1200, 2 * LATENT))
    dec = dsprites_decoder()[:-1].train()
    opt = torch.optim.Adagrad([*enc.parameters(), *dec.parameters()], lr=1e-2)
    x = (torch.rand(64, 4096) < 0.1).float()

    def step():
        mu, logvar = enc(x).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        rec = torch.nn.functional.binary_cross_entropy_with_logits(dec(z), x, reduction="sum") / 64
        kl = 0.5 * (mu**2 + logvar.exp() - logvar - 1).sum() / 64
        opt.zero_grad()
        (rec + 4.0 * kl).backward()
        opt.step()

    for _ in range(3):
        step()
    dt, _ = timed(lambda: [step() for _ in range(steps)])
    return dt / steps * (0.8 * 737_280 / 64)


def bench_encoder_cost(n_train: int, n_test: int) -> float:
    """What FactorVAE + BetaVAE cost with the paper's dSprites MLP encoder at the library's sample sizes
    ([2] times them with a linear map instead of a network): encoder throughput measured on 8,192 images,
    times the number of images the two procedures encode (batch 64)."""
    torch.manual_seed(0)
    enc = torch.nn.Sequential(torch.nn.Linear(4096, 1200), torch.nn.ReLU(), torch.nn.Linear(1200, 1200),
                              torch.nn.ReLU(), torch.nn.Linear(1200, 2 * LATENT)).eval()
    x = (torch.rand(8192, 4096) < 0.1).float()
    with torch.no_grad():
        enc(x[:64])
        dt, _ = timed(lambda: enc(x))
    images = {"factorvae": n_train + 64 * (n_train + n_test), "betavae": 2 * 64 * (n_train + n_test)}
    for name, n in images.items():
        print(f"[5] {name}: {n:,} images through the dSprites MLP encoder ≈ {dt / 8192 * n:.0f}s "
              f"(+ rendering them)")
    return dt / 8192 * sum(images.values())


def conv_decoder() -> torch.nn.Module:
    """disentanglement_lib's conv decoder for 64x64x1 images: 10 -> 256 -> 1024 (64x4x4) -> transposed convs
    (4x4, stride 2) to 64, 32, 32 and 1 channels."""
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = [torch.nn.Linear(LATENT, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1024),
                                     torch.nn.ReLU(), torch.nn.Unflatten(1, (64, 4, 4))]
    for a, b in ((64, 64), (64, 32), (32, 32), (32, 1)):
        layers += [torch.nn.ConvTranspose2d(a, b, 4, 2, 1), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1], torch.nn.Flatten()).eval()


def bench_gram_chunks(n: int) -> None:
    """decoder_gram's CPU chunking (the default, by the largest per-point tensor) vs the output-sized chunks of
    the rule before, on n random codes, each timed as the median of three after a warm-up."""
    import statistics

    mu = torch.randn(n, LATENT)
    for name, dec in (("dSprites MLP decoder", dsprites_decoder()), ("conv decoder", conv_decoder())):
        with torch.no_grad():
            out = int(np.prod(dec(mu[:1]).shape[1:]))
        largest = largest_per_point(dec, mu)
        before = (1 << 24) * largest // out  # the same chunk as 2^24 // (d * output floats)
        decoder_gram(dec, mu[:64])
        olds, news = [], []
        for _ in range(3):  # interleaved, so that a load drift hits both
            t, G_old = timed(partial(decoder_gram, dec, mu, max_elements=before))
            olds.append(t)
            t, G_new = timed(partial(decoder_gram, dec, mu))
            news.append(t)
        t_old, t_new = statistics.median(olds), statistics.median(news)
        same = np.allclose(G_new, G_old, rtol=1e-5, atol=1e-6)
        print(f"[6] {name} ({largest} floats per point at most, output {out}), {n} points, "
              f"{torch.get_num_threads()} threads: by output {t_old:.2f}s, by largest tensor {t_new:.2f}s, "
              f"speed-up {t_old / t_new:.2f}x, same Gram matrices: {same}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="reduced sizes (smoke run)")
    ap.add_argument("--n-jobs", type=int, default=os.cpu_count() or 1,
                    help="torch threads for the epoch and encoder timings and OMP_NUM_THREADS for DCI's GBTs")
    ap.add_argument("--parts", default="123456", help="which comparisons to run (1: assignment vs MILP, "
                    "2-4: metric times, DCI, epoch; 3 and 4 need 2; 5: FactorVAE/BetaVAE encoder cost; "
                    "6: decoder_gram's chunks)")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.n_jobs)  # gbt.default_threads() reads it
    torch.set_num_threads(1)
    sizes = (500, 2000, 1000, 500, 10) if args.quick else (10_000, 10_000, 10_000, 5_000, 50)
    n_milp, n_eval, n_tr, n_te, steps = sizes
    print(describe())
    if "1" in args.parts:
        bench_assignment(n_milp)
    if "6" in args.parts:
        torch.set_num_threads(args.n_jobs)
        bench_gram_chunks(256 if args.quick else 2048)
        torch.set_num_threads(1)
    encoder = 0.0
    if "5" in args.parts:
        torch.set_num_threads(args.n_jobs)
        encoder = bench_encoder_cost(n_tr, n_te)
        torch.set_num_threads(1)
    if "2" not in args.parts:
        if "3" in args.parts:  # DCI alone: both implementations on the same fresh codes, back to back
            rng, data, encode = np.random.default_rng(0), ArrayFactors(), linear_code()
            f_tr, f_te = data.sample_factors(n_tr, rng), data.sample_factors(n_te, rng)
            c_tr, c_te = encode(f_tr), encode(f_te)
            t_new, new = timed(lambda: dci(c_tr, f_tr, c_te, f_te, seed=0))
            bench_dci((c_tr, f_tr, c_te, f_te), new, t_new)
        return
    times, (dci_data, dci_result, dci_time) = bench_metrics(n_eval, n_tr, n_te)
    if "3" in args.parts:
        bench_dci(dci_data, dci_result, dci_time)
    if "4" not in args.parts:
        return
    torch.set_num_threads(args.n_jobs)
    epoch = bench_epoch(steps)
    total = sum(times.values())
    print(f"[4] one epoch of the dSprites MLP (torch threads={args.n_jobs}, extrapolated from {steps} steps): "
          f"{epoch:.0f}s; all metrics of one checkpoint {total:.0f}s = {100 * total / epoch:.0f}% of an epoch "
          f"(target <= 10%)")
    if encoder:
        print(f"    with [5]'s encoder passes of FactorVAE and BetaVAE through the real MLP encoder: "
              f"{total + encoder:.0f}s = {100 * (total + encoder) / epoch:.0f}% of an epoch")
    print("at the end:", describe())


if __name__ == "__main__":
    main()
