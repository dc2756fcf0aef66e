"""Seed-batched encoders and decoders: linear, mlp, and the disentanglement_lib 64x64 conv nets.

A network is a list of layers declared into a `ParamLayout`; its forward pass takes the named (S, *shape)
parameters of all S seeds (views of the flat buffer, see params.py) and runs them at once:
- dense layers as one batched matmul: x (S, B, in) @ W (S, in, out) + b (S, 1, out)  (torch.baddbmm);
- conv layers in one of the forms of CONV_FORMS, chosen per device by `conv_form_for` unless a network's
  `conv_form` names one:
    "grouped"     one grouped convolution with groups = S on activations laid out (B, S*C, H, W);
    "grouped_cl"  the same on activations in channels-last memory order (NHWC: the layout tensor-core
                  convolution kernels read);
    "per_seed"    S plain convolutions, seed s's weights on its own (B, C, H, W) activations;
    "per_seed_cl" the same in channels-last memory order;
    "im2col"      convolutions as batched matrix products over the seeds, activations (S, B, C, H, W):
                  each seed's (C_out, C_in·k²) weight matrix times its unfolded patches (F.unfold,
                  torch.baddbmm); transposed convolutions as each seed's (C_out·k², C_in) transposed weight
                  matrix times its input, folded back (F.fold, the adjoint of unfold). One batched GEMM per
                  layer in place of a grouped convolution (slower on a CPU; whether faster on a GPU is
                  for bench/conv_forms.py to measure).
  All compute the same function. On a CPU "per_seed" is the default: oneDNN's grouped convolution with
  groups = S ran the conv β-VAE's step at about half the per-seed throughput of S = 1 (bench/conv_forms.py),
  while S plain convolutions keep it, and a seed's arithmetic is then the same calls whatever its block
  (bitwise block independence). On CUDA "grouped" (one kernel per layer instead of S) stays the default
  until bench/conv_forms.py has been measured there.
Seed s only ever touches row s of the buffer, so seeds never mix.

Nonlinearities only in hidden layers, biases everywhere (thesis Table 3.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from workers.models.params import ParamLayout
from workers.trial import Arch


class _Tanh(torch.autograd.Function):
    """tanh(x) = 2·sigmoid(2x) − 1 (abs. error < 2e-7 in float32), derivative 1 − y².

    This torch CPU build evaluates torch.tanh at ~3 ns per element (sigmoid: ~0.4 ns), which made tanh a
    third of a seed-batched synth_nonlin step. Used for every tensor, whatever its size, so a seed's
    arithmetic does not depend on its block. Written in the torch.func style (setup_context, jvp, a generated
    vmap rule) because DtO differentiates the decoder with torch.func.jacfwd/vmap.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.sigmoid(x * 2.0).mul_(2.0).sub_(1.0)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # type: ignore[override]
        # saved through the save_for_* API only: an output kept as a ctx attribute forms a reference cycle
        # (output -> grad_fn -> ctx -> output) that outlives the step; it leaked ~20 GB over a long run
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)

    @staticmethod
    def jvp(ctx, x_t: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(x_t, y)


def _tanh(x: torch.Tensor) -> torch.Tensor:
    return _Tanh.apply(x) if x.device.type == "cpu" else torch.tanh(x)


_ACTS = {"relu": torch.relu, "tanh": _tanh, "none": lambda x: x,
         "leaky_relu": lambda x: F.leaky_relu(x, 0.2)}


@dataclass(frozen=True)
class Dense:
    name: str
    n_in: int
    n_out: int
    act: str


@dataclass(frozen=True)
class Conv:
    name: str
    c_in: int
    c_out: int
    act: str
    transpose: bool  # ConvTranspose2d (decoder) or Conv2d (encoder); always kernel 4, stride 2, padding 1


@dataclass(frozen=True)
class Reshape:
    """Switch between (S, B, F) dense activations and (B, S*C, H, W) conv activations."""

    shape: tuple[int, ...]  # per-example shape after the switch: (F,) or (C, H, W)


KERNEL, STRIDE, PADDING = 4, 2, 1  # TF "same" padding for k=4, s=2 (disentanglement_lib) == padding 1
CONV_FORMS = ("grouped", "grouped_cl", "per_seed", "per_seed_cl", "im2col")


def conv_form_for(device: torch.device) -> str:
    """The default conv form (CONV_FORMS) for activations on `device`: "per_seed" on a CPU, else "grouped"."""
    return "per_seed" if device.type == "cpu" else "grouped"


class Network:
    """A feed-forward stack whose parameters live in `layout` under `prefix`."""

    def __init__(self, prefix: str, layers: list[Dense | Conv | Reshape], layout: ParamLayout,
                 in_shape: tuple[int, ...], out_shape: tuple[int, ...]):
        self.prefix = prefix
        self.layers = layers
        self.in_shape = in_shape
        self.out_shape = out_shape
        self.conv_form: str | None = None  # one of CONV_FORMS; None: conv_form_for(the input's device)
        for layer in layers:
            if isinstance(layer, Dense):
                layout.add(f"{prefix}.{layer.name}.weight", (layer.n_in, layer.n_out), fan_in=layer.n_in)
                layout.add(f"{prefix}.{layer.name}.bias", (layer.n_out,), fan_in=layer.n_in)
            elif isinstance(layer, Conv):
                # PyTorch fan_in: weight.size(1) * k * k, i.e. c_in for Conv2d, c_out for ConvTranspose2d
                if layer.transpose:
                    shape, fan_in = (layer.c_in, layer.c_out, KERNEL, KERNEL), layer.c_out * KERNEL * KERNEL
                else:
                    shape, fan_in = (layer.c_out, layer.c_in, KERNEL, KERNEL), layer.c_in * KERNEL * KERNEL
                layout.add(f"{prefix}.{layer.name}.weight", shape, fan_in=fan_in)
                layout.add(f"{prefix}.{layer.name}.bias", (layer.c_out,), fan_in=fan_in)

    def __call__(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """x: (S, B, *in_shape) -> (S, B, *out_shape), seeds computed together.

        Between layers the activations are (S, B, F) for dense layers and, for conv layers, (B, S*C, H, W)
        in the grouped forms, a list of S (B, C, H, W) tensors in the per-seed forms, (S, B, C, H, W) in
        "im2col"."""
        S, B = x.shape[0], x.shape[1]
        form = self.conv_form or conv_form_for(x.device)
        if form not in CONV_FORMS:
            raise ValueError(f"conv_form: got {form!r}; allowed: {', '.join(CONV_FORMS)}")
        h: torch.Tensor | list[torch.Tensor] = x.reshape(S, B, -1)
        if self.layers and isinstance(self.layers[0], Conv):
            h = _to_conv(x, form)
        for layer in self.layers:
            if isinstance(layer, Dense):
                w = params[f"{self.prefix}.{layer.name}.weight"]
                b = params[f"{self.prefix}.{layer.name}.bias"]
                h = _ACTS[layer.act](torch.baddbmm(b.unsqueeze(1), h, w))
            elif isinstance(layer, Conv):
                w = params[f"{self.prefix}.{layer.name}.weight"]
                b = params[f"{self.prefix}.{layer.name}.bias"]
                conv = F.conv_transpose2d if layer.transpose else F.conv2d
                act = _ACTS[layer.act]
                if form == "im2col":
                    h = act(_im2col_conv(h, w, b, layer.transpose))
                elif form.startswith("grouped"):
                    # (S*c_out, c_in, k, k) or (S*c_in, c_out, k, k): groups = S
                    h = act(conv(h, w.reshape(-1, *w.shape[2:]), b.reshape(-1), stride=STRIDE, padding=PADDING,
                                 groups=S))
                else:  # unbind, not w[s]: its backward is one stack, not S full-size zero-filled gradients
                    h = [act(conv(hs, ws, bs, stride=STRIDE, padding=PADDING))
                         for hs, ws, bs in zip(h, w.unbind(0), b.unbind(0), strict=True)]
            elif len(layer.shape) == 1:  # conv -> dense
                h = _to_dense(h, form, S, B)
            else:  # dense -> conv
                h = _to_conv(h.reshape(S, B, *layer.shape), form)
        if self.layers and isinstance(self.layers[-1], Conv):
            h = _to_seeds(h, form, S, B)
        return h.reshape(S, B, *self.out_shape)


def _to_conv(x: torch.Tensor, form: str) -> torch.Tensor | list[torch.Tensor]:
    """(S, B, C, H, W) -> the conv activations of `form`."""
    if form == "im2col":
        return x
    if form.startswith("per_seed"):
        hs = list(x.unbind(0))
        return [h.contiguous(memory_format=torch.channels_last) for h in hs] if form.endswith("_cl") else hs
    h = x.transpose(0, 1).reshape(x.shape[1], x.shape[0] * x.shape[2], *x.shape[3:])
    return h.contiguous(memory_format=torch.channels_last) if form.endswith("_cl") else h


def _to_seeds(h: torch.Tensor | list[torch.Tensor], form: str, S: int, B: int) -> torch.Tensor:
    """Conv activations of `form` -> (S, B, C, H, W)."""
    if isinstance(h, list):
        return torch.stack(h)
    if form == "im2col":
        return h
    return h.reshape(B, S, -1, *h.shape[2:]).transpose(0, 1)


def _to_dense(h: torch.Tensor | list[torch.Tensor], form: str, S: int, B: int) -> torch.Tensor:
    """Conv activations of `form` -> (S, B, C*H*W)."""
    if isinstance(h, list):
        return torch.stack(h).reshape(S, B, -1)
    if form == "im2col":
        return h.reshape(S, B, -1)
    return h.reshape(B, S, -1).transpose(0, 1)


def _im2col_conv(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor, transpose: bool) -> torch.Tensor:
    """One conv layer (kernel 4, stride 2, padding 1) of S seeds as batched matrix products.

    h (S, B, C_in, H, W); w (S, C_out, C_in, 4, 4), or (S, C_in, C_out, 4, 4) when `transpose`; b (S, C_out)
    -> (S, B, C_out, H/2, W/2), or (S, B, C_out, 2H, 2W) when `transpose`.
    """
    S, B, C, H, W = h.shape
    kk = KERNEL * KERNEL
    if not transpose:
        cols = F.unfold(h.reshape(S * B, C, H, W), KERNEL, padding=PADDING, stride=STRIDE)  # (S*B, C*16, L)
        L = cols.shape[-1]
        cols = cols.view(S, B, C * kk, L).transpose(1, 2).reshape(S, C * kk, B * L)
        out = torch.baddbmm(b.unsqueeze(-1), w.reshape(S, w.shape[1], C * kk), cols)  # (S, C_out, B*L)
        return out.view(S, -1, B, H // STRIDE, W // STRIDE).transpose(1, 2)
    c_out = w.shape[2]
    x = h.reshape(S, B, C, H * W).transpose(1, 2).reshape(S, C, B * H * W)
    cols = torch.bmm(w.reshape(S, C, c_out * kk).transpose(1, 2), x)  # (S, C_out*16, B*H*W)
    cols = cols.view(S, c_out * kk, B, H * W).transpose(1, 2).reshape(S * B, c_out * kk, H * W)
    out = F.fold(cols, (H * STRIDE, W * STRIDE), KERNEL, padding=PADDING, stride=STRIDE)  # (S*B, C_out, 2H, 2W)
    return out.view(S, B, c_out, H * STRIDE, W * STRIDE) + b.view(S, 1, c_out, 1, 1)


def _mlp(prefix: str, n_in: int, widths: list[int], act: str, n_out: int) -> list[Dense | Conv | Reshape]:
    sizes = [n_in, *widths]
    layers: list[Dense | Conv | Reshape] = [
        Dense(f"fc{i}", sizes[i], sizes[i + 1], act) for i in range(len(widths))
    ]
    layers.append(Dense(f"fc{len(widths)}", sizes[-1], n_out, "none"))
    return layers


def build_encoder(arch: Arch, obs_shape: tuple[int, ...], n_out: int,
                  layout: ParamLayout) -> Network:
    """Encoder x (S, B, *obs_shape) -> (S, B, n_out) head outputs (posterior parameters)."""
    return _build("encoder", arch, obs_shape, (n_out,), layout)


def build_decoder(arch: Arch, latent_dim: int, obs_shape: tuple[int, ...],
                  layout: ParamLayout) -> Network:
    """Decoder z (S, B, d) -> (S, B, *obs_shape): logits (Bernoulli) or means (Gaussian)."""
    return _build("decoder", arch, (latent_dim,), obs_shape, layout)


def _build(side: str, arch: Arch, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
           layout: ParamLayout) -> Network:
    """`side` is "encoder" or "decoder"; arch: kind, widths, activations."""
    kind, prefix = arch.kind, side[:3]
    if kind in ("linear", "mlp"):
        widths, act = (list(getattr(arch, side)), getattr(arch, f"{side}_act")) if kind == "mlp" else ([], "none")
        layers = _mlp(prefix, math.prod(in_shape), widths, act, math.prod(out_shape))
    elif kind == "conv":
        image = in_shape if side == "encoder" else out_shape
        _check_conv_shape(image)
        layers = _conv_encoder(image[0], out_shape[0]) if side == "encoder" else _conv_decoder(in_shape[0], image[0])
    else:
        raise ValueError(f"arch.kind: unknown architecture {kind!r}; allowed: linear, mlp, conv")
    return Network(prefix, layers, layout, in_shape, out_shape)


def _conv_encoder(channels: int, n_out: int) -> list[Dense | Conv | Reshape]:
    """disentanglement_lib conv_encoder: 32-32-64-64 4x4/2 ReLU convs, dense 256 ReLU, linear head."""
    return [Conv("conv1", channels, 32, "relu", False), Conv("conv2", 32, 32, "relu", False),
            Conv("conv3", 32, 64, "relu", False), Conv("conv4", 64, 64, "relu", False),
            Reshape((64 * 4 * 4,)), Dense("fc1", 1024, 256, "relu"), Dense("fc2", 256, n_out, "none")]


def _conv_decoder(latent_dim: int, channels: int) -> list[Dense | Conv | Reshape]:
    """disentanglement_lib deconv_decoder: dense 256, 1024 ReLU, 64-32-32-C 4x4/2 transposed convs."""
    return [Dense("fc1", latent_dim, 256, "relu"), Dense("fc2", 256, 1024, "relu"), Reshape((64, 4, 4)),
            Conv("deconv1", 64, 64, "relu", True), Conv("deconv2", 64, 32, "relu", True),
            Conv("deconv3", 32, 32, "relu", True), Conv("deconv4", 32, channels, "none", True)]


def build_discriminator(latent_dim: int, layout: ParamLayout) -> Network:
    """FactorVAE discriminator (disentanglement_lib fc_discriminator): 6 x 1000 leaky ReLU(0.2), 2 logits."""
    return Network("disc", _mlp("disc", latent_dim, [1000] * 6, "leaky_relu", 2), layout, (latent_dim,), (2,))


def _check_conv_shape(obs_shape: tuple[int, ...]) -> None:
    if len(obs_shape) != 3 or obs_shape[1:] != (64, 64) or obs_shape[0] not in (1, 3):
        raise ValueError(f"arch.kind 'conv' needs 64x64 images with 1 or 3 channels, got observation shape "
                         f"{obs_shape}; use arch 'mlp' for other data")
