"""`make_perturbation(job)`: train the manipulation network m(w) and write the perturbation folder (a Ray task).

Thesis §4.2.4 / §4.3.1. From the K most disentangled and the K most entangled restarts (by MIG, chosen by the
driver, sweep/perturb.py), each restart's stored model is loaded; its encoder is frozen and always fed the
ORIGINAL images x, its decoder is trained on the altered images x' = N(x + ε·m(w)) (N: the reflection into
[0, 1] of `workers.data.perturbation_network.normalise`, images only). Per manipulation step:

    3 decoder steps   each on a fresh batch: every decoder minimises L_rec(x', z), m fixed
    1 m step          on a fresh batch: m minimises mean_ent L_rec^ent(x', z) − mean_dis L_rec^dis(x', z)

L_rec is the restart's own reconstruction loss (Bernoulli cross-entropy or squared error, summed over the
elements) averaged over 5 latent samples z = μ(x) + σ(x)·ε per image and over the batch. m and the decoders use
Adam (β = (0.9, 0.999), eps = 1e-7), lr 1e-4. The batches are drawn from the training split of the source
restarts' dataset with a generator seeded by `job["seed"]`.

The objective check: the m objective (mean L_rec of the entangled decoders minus that of the disentangled ones)
is measured before the first step and after the last, on the same fixed EVAL_BATCHES training batches with the
same latent samples. The manipulation did something only if the objective fell by at least
`job["min_fall"]` (default MIN_FALL = 5%) of the initial mean reconstruction loss of the two sets; otherwise
`make_perturbation` writes nothing and says so (`written: False`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
from typing import Any

import numpy as np
import torch
import yaml

from workers.checkpoint import load_torch
from workers.data import load
from workers.data.contact_sheet import _as_picture
from workers.data.perturbation_folder import FORMAT, META_FILE, QUANT_LEVELS, SHEET_FILE, WEIGHTS_FILE
from workers.data.perturbation_network import architecture, encode_factors, manipulation, normalise
from workers.data.perturbed import PerturbedDataset
from workers.models.loss_terms import recon_loss
from workers.models.params import views
from workers.models.vae import BatchedVAE
from workers.store.layout import join_uri, model_uri, read_text, write_bytes, write_text
from workers.trial import RestartConfig

ADAM = {"betas": (0.9, 0.999), "eps": 1e-7}
DECODER_STEPS = 3
LATENT_SAMPLES = 5
EVAL_BATCHES = 4  # fixed training batches the objective is measured on before and after training
MIN_FALL = 0.05  # required fall of the objective, as a fraction of the initial mean reconstruction loss


class Source:
    """One stored restart: frozen encoder, trainable decoder (its own Adam)."""

    def __init__(self, entry: dict[str, Any], study_uri: str, obs_shape: tuple[int, ...], device: torch.device,
                 lr: float):
        self.entry = entry
        config = RestartConfig.from_dict(json.loads(entry["config"]))
        self.vae = BatchedVAE(config, obs_shape)
        uri = model_uri(study_uri, entry["run_key"], int(entry["epoch"]))
        try:
            state = load_torch(uri)
        except (OSError, FileNotFoundError) as e:
            raise FileNotFoundError(f"restart {entry['run_key']}: stored weights {uri} cannot be read ({e}); "
                                    "the source study must have been trained by `orthosweep submit`") from e
        flat = self.vae.layout.flat_from_state_dict(state).to(device)
        self.params = {n: v.detach().clone().requires_grad_(n.startswith("dec."))
                       for n, v in views(self.vae.layout, flat).items()}
        self.decoder = [p for n, p in self.params.items() if n.startswith("dec.")]
        self.opt = torch.optim.Adam(self.decoder, lr=lr, **ADAM)

    def latents(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """(1, samples·B, d) latent samples of the original images x (B, *obs); the encoder is frozen."""
        with torch.no_grad():
            mu, post = self.vae.encode(self.params, x.unsqueeze(0))
            rep = {k: v.repeat(1, LATENT_SAMPLES, *([1] * (v.dim() - 2))) for k, v in post.items()}
            mu = mu.repeat(1, LATENT_SAMPLES, 1)
            eps = None if self.vae.posterior == "none" else torch.randn(mu.shape, generator=gen, device="cpu").to(
                mu.device)
            return self.vae.sample(mu, rep, eps)

    def rec(self, x_prime: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Scalar L_rec of the targets x' (B, *obs) decoded from z (1, samples·B, d)."""
        out = self.vae.decode(self.params, z)
        target = x_prime.unsqueeze(0).repeat(1, LATENT_SAMPLES, *([1] * (x_prime.dim() - 1)))
        return recon_loss(target, out, self.vae.likelihood).mean()

    def decoder_step(self, x: torch.Tensor, x_prime: torch.Tensor, gen: torch.Generator) -> float:
        loss = self.rec(x_prime, self.latents(x, gen))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return float(loss.detach())


def _device() -> torch.device:
    return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")


def train_manipulation(job: dict[str, Any], dataset: Any, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """Train m; returns it (on the CPU) and the losses record."""
    seed = int(job.get("seed", 0))
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 0x9E27])
    gen = torch.Generator().manual_seed(seed)
    eps, lr, B, steps = float(job["epsilon"]), float(job.get("lr", 1e-4)), int(job["batch_size"]), int(job["steps"])
    obs_shape = tuple(dataset.observation_shape)
    reflect = len(obs_shape) == 3
    dis = [Source(e, job["study_uri"], obs_shape, device, lr) for e in job["disentangled"]]
    ent = [Source(e, job["study_uri"], obs_shape, device, lr) for e in job["entangled"]]
    net = manipulation(obs_shape, dataset.num_factors).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr, **ADAM)
    train_idx = dataset.split_indices("train")
    B = min(B, train_idx.size)

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        idx = np.sort(train_idx[rng.choice(train_idx.size, size=B, replace=False)])
        x = torch.from_numpy(dataset.observations_at(idx)).to(device)
        w = torch.from_numpy(encode_factors(dataset.factors_at(idx), dataset.factor_sizes)).float().to(device)
        return x, w

    def altered(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        xp = x + eps * net(w)
        return normalise(xp) if reflect else xp

    eval_idx = np.sort(train_idx[np.random.default_rng([seed, 0xE7A1]).choice(
        train_idx.size, size=min(EVAL_BATCHES * B, train_idx.size), replace=False)])

    def objective() -> dict[str, float]:
        """The m objective on the fixed evaluation batches, with the same latent samples at every call."""
        g = torch.Generator().manual_seed(seed + 1)
        rec: dict[str, list[float]] = {"ent": [], "dis": []}
        with torch.no_grad():
            for part in np.array_split(eval_idx, max(1, eval_idx.size // B)):
                x = torch.from_numpy(dataset.observations_at(part)).to(device)
                w = torch.from_numpy(encode_factors(dataset.factors_at(part), dataset.factor_sizes)).float().to(device)
                xp = altered(x, w)
                for side, sources in (("ent", ent), ("dis", dis)):
                    rec[side].append(float(torch.stack([s.rec(xp, s.latents(x, g)) for s in sources]).mean()))
        e, d = float(np.mean(rec["ent"])), float(np.mean(rec["dis"]))
        return {"rec_entangled": e, "rec_disentangled": d, "objective": e - d}

    before = objective()
    history: list[tuple[float, float]] = []
    for _ in range(steps):
        for _ in range(DECODER_STEPS):
            x, w = batch()
            with torch.no_grad():
                xp = altered(x, w)
            for s in dis + ent:
                s.decoder_step(x, xp, gen)
        x, w = batch()
        xp = altered(x, w)
        l_ent = torch.stack([s.rec(xp, s.latents(x, gen)) for s in ent]).mean()
        l_dis = torch.stack([s.rec(xp, s.latents(x, gen)) for s in dis]).mean()
        loss = l_ent - l_dis
        grads = torch.autograd.grad(loss, list(net.parameters()))
        for p, g in zip(net.parameters(), grads, strict=True):
            p.grad = g
        opt.step()
        opt.zero_grad(set_to_none=True)
        history.append((float(l_ent.detach()), float(l_dis.detach())))
        if not np.isfinite(history[-1]).all():
            raise FloatingPointError(f"the reconstruction losses became non-finite at step {len(history)}; "
                                     "try a smaller --epsilon or fewer --steps")
    window = max(1, min(50, len(history) // 5 or 1))

    def summary(rows: list[tuple[float, float]]) -> dict[str, float]:
        if not rows:
            return {}
        e, d = np.mean([r[0] for r in rows]), np.mean([r[1] for r in rows])
        return {"rec_entangled": float(e), "rec_disentangled": float(d), "objective": float(e - d)}

    after = objective()
    losses = {"initial": summary(history[:window]), "final": summary(history[-window:]),
              "averaged_over_steps": window,
              "check": objective_check(before, after, float(job.get("min_fall", MIN_FALL)), int(eval_idx.size))}
    return net.cpu().eval(), losses


def objective_check(before: dict[str, float], after: dict[str, float], min_fall: float,
                    points: int) -> dict[str, Any]:
    """The objective's initial and final value, its fall (initial − final, in L_rec units) and that fall as a
    fraction of the initial mean reconstruction loss of the two sets; `passed` when that fraction is at least
    `min_fall`."""
    scale = (before["rec_entangled"] + before["rec_disentangled"]) / 2
    fall = before["objective"] - after["objective"]
    relative = fall / scale if scale > 0 else float("nan")
    return {"initial": before, "final": after, "fall": fall, "relative_fall": relative, "min_relative_fall": min_fall,
            "passed": bool(np.isfinite(relative) and relative >= min_fall),
            "measured_on": f"{points} fixed training points, the same latent samples, before the first and after "
                           "the last manipulation step"}


def write_contact_sheet(ds: Any, out_path: str, columns: int = 8, seed: int = 0) -> None:
    """Rows: original x, manipulation (x' − x)/ε, altered x' of `columns` test points (one per column)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    test = ds.split_indices("test")
    idx = np.sort(np.random.default_rng(seed).choice(test, size=min(columns, test.size), replace=False))
    x, xp = ds.base.observations_at(idx), ds.observations_at(idx)
    rows = [("original x", x), ("manipulation (x'−x)/ε", (xp.astype(np.float64) - x) / ds.eps), ("altered x'", xp)]
    vector = len(ds.observation_shape) == 1
    fig, axes = plt.subplots(3, idx.size, figsize=(1.3 * idx.size + 1, 4.2), squeeze=False)
    lo, hi = (float(min(x.min(), xp.min())), float(max(x.max(), xp.max()))) if vector else (0.0, 1.0)
    for r, (label, obs) in enumerate(rows):
        for c in range(idx.size):
            ax = axes[r, c]
            pic = _as_picture(obs[c])
            if r == 1:
                pic = pic if pic.ndim == 2 else pic.mean(-1)
                ax.imshow(pic, cmap="coolwarm", vmin=-1, vmax=1, interpolation="nearest",
                          aspect="auto" if vector else "equal")
            else:
                ax.imshow(pic, cmap="gray" if not vector else "coolwarm", vmin=lo, vmax=hi, interpolation="nearest",
                          aspect="auto" if vector else "equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"#{idx[c]}", fontsize=7, pad=2)
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.suptitle(f"{ds.name}: perturbation ε = {ds.eps:g} (manipulation row: −1 blue … +1 red)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out_path, dpi=80)
    plt.close(fig)


def make_perturbation(job: dict[str, Any]) -> dict[str, Any]:
    """Train m and write the folder `job["out"]`; returns what perturbation.yaml records (plus `folder`, `seconds`,
    `written`). When the objective check fails (`losses.check.passed` false) nothing is written and the result
    is {written: False, losses, folder, seconds}.

    job: study_uri, study, dataset, dataset_options (of the source restarts, without alterations), epsilon,
    out, name, disentangled / entangled (restart dicts: run_key, config_key, seed, epoch, mig, config JSON),
    steps, batch_size, seed, lr, model, force, min_fall (optional, MIN_FALL), excluded_overpruned (optional)."""
    t0 = time.time()
    if read_text(join_uri(job["out"], META_FILE)) is not None and not job.get("force"):
        raise FileExistsError(f"{job['out']} already holds a perturbation (studies may depend on it); give another "
                              "--name or --out, or --force to replace it")
    device = _device()
    dataset = load(job["dataset"], **job["dataset_options"])
    net, losses = train_manipulation(job, dataset, device)
    if not losses["check"]["passed"]:  # a perturbation that does nothing is not written
        return {"written": False, "losses": losses, "folder": job["out"], "seconds": round(time.time() - t0, 2)}
    keep = ("run_key", "config_key", "seed", "epoch", "mig")
    source = {"study_uri": job["study_uri"], "study": job.get("study"), "model": job.get("model", "beta_vae"),
              "selected_by": "mig at the last checkpoint (status ok, final epoch; over-pruned restarts excluded)",
              "excluded_overpruned": int(job.get("excluded_overpruned", 0)),
              "disentangled": [{k: e[k] for k in keep} for e in job["disentangled"]],
              "entangled": [{k: e[k] for k in keep} for e in job["entangled"]]}
    training = {"steps": int(job["steps"]), "batch_size": int(job["batch_size"]), "seed": int(job.get("seed", 0)),
                "decoder_steps_per_step": DECODER_STEPS, "latent_samples": LATENT_SAMPLES,
                "optimizer": {"name": "adam", "lr": float(job.get("lr", 1e-4)), "betas": list(ADAM["betas"]),
                              "eps": ADAM["eps"]},
                "device": str(device), "seconds": round(time.time() - t0, 2)}
    meta = write_perturbation(job["out"], net, dataset, dict(job["dataset_options"]), float(job["epsilon"]),
                              name=job["name"], source=source, training=training, losses=losses)
    return {**meta, "written": True, "folder": job["out"], "seconds": round(time.time() - t0, 2)}


def write_perturbation(out: str, net: torch.nn.Module, dataset: Any, dataset_options: dict[str, Any], epsilon: float, *,
                       name: str, source: dict[str, Any], training: dict[str, Any],
                       losses: dict[str, Any]) -> dict[str, Any]:
    """Write the folder `out` (path or URI) for m = `net` on `dataset` (opened with `dataset_options`, unaltered):
    manipulation.pt, contact_sheet.png, then perturbation.yaml (last: a folder with it is complete)."""
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu().float().contiguous() for k, v in net.state_dict().items()}, buf)
    blob = buf.getvalue()
    write_bytes(join_uri(out, WEIGHTS_FILE), blob)
    image = len(dataset.observation_shape) == 3
    meta = {
        "format": FORMAT,
        "name": name,
        "dataset": dataset.name,
        "dataset_options": dataset_options,
        "epsilon": float(epsilon),
        "normalisation": "x' - 2 relu(x' - 1) + 2 relu(-x') (images in [0, 1])" if image
        else "none (unbounded vector data)",
        "quantisation": {"levels": QUANT_LEVELS, "rule": "delta = epsilon * round(127 m(w)) / 127, m in float64"},
        "source": source,
        "training": training,
        "losses": losses,
        "architecture": architecture(tuple(dataset.observation_shape), dataset.num_factors),
        "weights": {"file": WEIGHTS_FILE, "sha256": hashlib.sha256(blob).hexdigest()},
        "contact_sheet": SHEET_FILE,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    perturbed = PerturbedDataset(dataset, out, meta=(out, meta))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, SHEET_FILE)
        write_contact_sheet(perturbed, path)
        with open(path, "rb") as f:
            write_bytes(join_uri(out, SHEET_FILE), f.read())
    write_text(join_uri(out, META_FILE), yaml.safe_dump(meta, sort_keys=False))
    return meta
