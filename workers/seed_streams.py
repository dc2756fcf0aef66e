"""Per-seed random streams: each seed owns one CPU `torch.Generator` per purpose.

Streams: "init" (network weights), "disc_init" (FactorVAE discriminator), "data" (epoch permutations),
"noise" (reparameterisation ε), "shuffle" (FactorVAE's per-latent batch permutations), "eval" (noise of
held-out losses; re-seeded per checkpoint so evaluation never advances a training stream), "pair" (the
paired models' partners and PCL's negatives, `workers.data.pairs`; only their blocks hold it, so the
other models' streams and saved states are unchanged).
A generator is seeded from (seed, stream) only, so a seed's draws never depend on the other seeds of its
block, and two models trained with the same seed share their data order. Everything is drawn on the CPU
(identical on every device) in blocks — one permutation per seed per epoch, noise per chunk of steps —
then moved to the device in one copy, so there is no per-step, per-seed Python work.
"""

from __future__ import annotations

import numpy as np
import torch

STREAMS = {"init": 1, "disc_init": 2, "data": 3, "noise": 4, "shuffle": 5, "eval": 6, "pair": 7}


def seed_generator(seed: int, stream: str, *extra: int) -> torch.Generator:
    """A CPU generator for (seed, stream, *extra), decorrelated through numpy's SeedSequence."""
    state = np.random.SeedSequence([int(seed), STREAMS[stream], *map(int, extra)]).generate_state(2, np.uint32)
    g = torch.Generator()
    g.manual_seed((int(state[0]) << 31) ^ int(state[1]))
    return g


class SeedStreams:
    """The training streams of a block of seeds (`seeds[s]` is the seed of row s)."""

    TRAINING = ("init", "disc_init", "data", "noise", "shuffle")
    OPTIONAL = ("pair",)  # streams a block holds only when its model needs them (`extra`)

    def __init__(self, seeds: list[int], extra: tuple[str, ...] = ()):
        self.seeds = list(seeds)
        unknown = set(extra) - set(self.OPTIONAL)
        if unknown:
            raise ValueError(f"SeedStreams: unknown optional stream(s) {sorted(unknown)}; allowed: {self.OPTIONAL}")
        self.gens = {name: [seed_generator(s, name) for s in self.seeds] for name in (*self.TRAINING, *extra)}

    def epoch_order(self, n: int, steps: int, batch: int) -> torch.Tensor:
        """(S, steps, batch) int64 positions in [0, n): each seed's fresh permutation, cut into batches
        (the last incomplete batch is dropped)."""
        perms = [torch.randperm(n, generator=g)[: steps * batch] for g in self.gens["data"]]
        return torch.stack(perms).view(len(self.seeds), steps, batch)

    def noise(self, steps: int, batch: int, dim: int) -> torch.Tensor:
        """(S, steps, batch, dim) standard normal ε."""
        return torch.stack([torch.randn(steps, batch, dim, generator=g) for g in self.gens["noise"]])

    def shuffles(self, steps: int, batch: int, dim: int) -> torch.Tensor:
        """(S, steps, batch, dim) int64: for every step and latent, a permutation of the batch."""
        return torch.stack([torch.rand(steps, batch, dim, generator=g).argsort(dim=1)
                            for g in self.gens["shuffle"]])

    def state(self) -> dict[str, list[torch.Tensor]]:
        return {name: [g.get_state() for g in gens] for name, gens in self.gens.items()}

    def load_state(self, state: dict[str, list[torch.Tensor]]) -> None:
        for name, gens in self.gens.items():
            for g, st in zip(gens, state[name], strict=True):
                g.set_state(st)
