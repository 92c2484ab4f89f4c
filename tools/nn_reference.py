"""PyTorch reference of docs/NN_SPEC.md (the contract with Sources/NN).

Every module here computes exactly the function the spec defines, and `state_dict()` keys equal the
spec's parameter names, so a OneStep safetensors checkpoint loads with `load_state_dict(strict=True)`.

    model, config = load_safetensors("unet.safetensors")
    y = model(x, c_noise, labels)            # forward(x, c_noise, labels=None)
    save_safetensors(model, config, "copy.safetensors")

FLOP counting (`flops_per_sample`): 2 * MACs of every Conv2d and Linear (map_label included, as a
Linear on the one-hot), biases, norms, activations, up-sampling and additions not counted.
Conv2d: 2 * Cout * Cin * k * k * Hout * Wout; Linear: 2 * in * out; per sample.
"""

from __future__ import annotations

import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

FORMAT = "onestep-1"

UNET_DEFAULTS = {
    "in_channels": 1,
    "out_channels": 1,
    "resolution": 28,
    "channels": [32, 64, 64],
    "blocks_per_level": 2,
    "noise_channels": 32,
    "emb_channels": 128,
    "num_classes": 0,
}

MLP_DEFAULTS = {
    "dim": 2,
    "width": 128,
    "blocks": 3,
    "noise_channels": 32,
    "emb_channels": None,  # = width
    "num_classes": 0,
}


def groups_for(channels: int) -> int:
    """groups(C) = min(32, C // 4) (spec: C is always divisible)."""
    g = min(32, channels // 4)
    if g < 1 or channels % g != 0:
        raise ValueError(f"GroupNorm: {channels} channels not divisible into min(32, C//4) = {g} groups")
    return g


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups_for(channels), channels, eps=1e-5, affine=True)


def silu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def upsample_nearest2x(x: torch.Tensor) -> torch.Tensor:
    return x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


def avgpool2x2(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=2, stride=2)


class PositionalEmbedding(nn.Module):
    """emb(c) = cat[cos(c f_j), sin(c f_j)], f_j = (1/10000)^(j/(N/2)), j = 0..N/2-1. [B] -> [B, N]."""

    def __init__(self, num_channels: int, max_positions: float = 10000.0):
        super().__init__()
        if num_channels % 2 != 0:
            raise ValueError("noise_channels must be even")
        self.num_channels = num_channels
        self.max_positions = max_positions

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        half = self.num_channels // 2
        j = torch.arange(half, dtype=c.dtype, device=c.device)
        freqs = (1.0 / self.max_positions) ** (j / half)
        a = c.reshape(-1, 1) * freqs.reshape(1, -1)
        return torch.cat([torch.cos(a), torch.sin(a)], dim=1)


class EmbeddingMixin:
    """Shared embedding MLP: map_label (optional, no bias), map_layer0 (N->E), map_layer1 (E->E)."""

    def _make_embedding(self, noise_channels: int, emb_channels: int, num_classes: int):
        self.map_noise = PositionalEmbedding(noise_channels)
        self.map_label = nn.Linear(num_classes, noise_channels, bias=False) if num_classes > 0 else None
        self.map_layer0 = nn.Linear(noise_channels, emb_channels)
        self.map_layer1 = nn.Linear(emb_channels, emb_channels)

    def embed(self, c_noise: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        e = self.map_noise(c_noise)
        if self.map_label is not None:
            if labels is None:
                raise ValueError("this network is class-conditional: labels are required")
            # the null label -1 (label dropout, classifier-free guidance) is an all-zero one-hot
            lab = labels.long()
            onehot = F.one_hot(lab.clamp(min=0), self.map_label.in_features).to(e.dtype)
            onehot = onehot * (lab >= 0).unsqueeze(1).to(e.dtype)
            e = e + self.map_label(onehot)
        elif labels is not None:
            raise ValueError("labels given to an unconditional network")
        e = silu(self.map_layer0(e))
        e = silu(self.map_layer1(e))
        return e


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb_channels: int):
        super().__init__()
        self.cin, self.cout = cin, cout
        self.norm0 = group_norm(cin)
        self.conv0 = nn.Conv2d(cin, cout, 3, stride=1, padding=1)
        self.affine = nn.Linear(emb_channels, cout)
        self.norm1 = group_norm(cout)
        self.conv1 = nn.Conv2d(cout, cout, 3, stride=1, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1, stride=1, padding=0) if cin != cout else None

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.conv0(silu(self.norm0(x)))
        h = h + self.affine(e)[:, :, None, None]
        h = self.conv1(silu(self.norm1(h)))
        s = self.skip(x) if self.skip is not None else x
        return (h + s) * math.sqrt(0.5)


class MLPBlock(nn.Module):
    def __init__(self, width: int, emb_channels: int):
        super().__init__()
        self.fc0 = nn.Linear(width, width)
        self.affine = nn.Linear(emb_channels, width)
        self.fc1 = nn.Linear(width, width)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        t = self.fc0(silu(h)) + self.affine(e)
        return h + self.fc1(silu(t))


class _Level(nn.Module):
    """Container so names come out as enc.{l}.block{i}.* / enc.{l}.down.* / dec.{l}.up.*."""


class _Out(nn.Module):
    pass


class UNet(EmbeddingMixin, nn.Module):
    arch = "unet"

    def __init__(self, config: dict | None = None, **kw):
        nn.Module.__init__(self)
        cfg = dict(UNET_DEFAULTS)
        cfg.update(config or {})
        cfg.update(kw)
        unknown = set(cfg) - set(UNET_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown unet config keys {sorted(unknown)}")
        cfg["channels"] = [int(c) for c in cfg["channels"]]
        self.config = cfg
        ch = cfg["channels"]
        L = len(ch)
        nb = cfg["blocks_per_level"]
        E = cfg["emb_channels"]
        self._make_embedding(cfg["noise_channels"], E, cfg["num_classes"])

        self.enc = nn.Module()
        self.enc.conv_in = nn.Conv2d(cfg["in_channels"], ch[0], 3, stride=1, padding=1)
        for l in range(L):
            lv = _Level()
            for i in range(nb):
                cin = (ch[l - 1] if l > 0 else ch[0]) if i == 0 else ch[l]
                lv.add_module(f"block{i}", ResBlock(cin, ch[l], E))
            if l < L - 1:
                lv.down = nn.Conv2d(ch[l], ch[l], 3, stride=2, padding=1)
            self.enc.add_module(str(l), lv)
        self.mid = nn.Module()
        self.mid.block0 = ResBlock(ch[L - 1], ch[L - 1], E)
        self.dec = nn.Module()
        c_h = ch[L - 1]
        for l in reversed(range(L)):
            lv = _Level()
            for i in range(nb):
                lv.add_module(f"block{i}", ResBlock(c_h + ch[l], ch[l], E))
                c_h = ch[l]
            if l > 0:
                lv.up = nn.Conv2d(ch[l], ch[l], 3, stride=1, padding=1)
            self.dec.add_module(str(l), lv)
        self.out = _Out()
        self.out.norm = group_norm(ch[0])
        self.out.conv = nn.Conv2d(ch[0], cfg["out_channels"], 3, stride=1, padding=1)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.config
        L = len(cfg["channels"])
        nb = cfg["blocks_per_level"]
        e = self.embed(c_noise, labels)
        h = self.enc.conv_in(x)
        skips = []
        for l in range(L):
            lv = getattr(self.enc, str(l))
            for i in range(nb):
                h = getattr(lv, f"block{i}")(h, e)
                skips.append(h)
            if l < L - 1:
                h = lv.down(h)
        h = self.mid.block0(h, e)
        for l in reversed(range(L)):
            lv = getattr(self.dec, str(l))
            for i in range(nb):
                h = getattr(lv, f"block{i}")(torch.cat([h, skips.pop()], dim=1), e)
            if l > 0:
                h = lv.up(upsample_nearest2x(h))
        return self.out.conv(silu(self.out.norm(h)))

    def zero_init_output(self):
        nn.init.zeros_(self.out.conv.weight)
        nn.init.zeros_(self.out.conv.bias)


class MLPDenoiser(EmbeddingMixin, nn.Module):
    arch = "mlp"

    def __init__(self, config: dict | None = None, **kw):
        nn.Module.__init__(self)
        cfg = dict(MLP_DEFAULTS)
        cfg.update(config or {})
        cfg.update(kw)
        unknown = set(cfg) - set(MLP_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown mlp config keys {sorted(unknown)}")
        if cfg["emb_channels"] is None:
            cfg["emb_channels"] = cfg["width"]
        self.config = cfg
        D, W, E = cfg["dim"], cfg["width"], cfg["emb_channels"]
        self._make_embedding(cfg["noise_channels"], E, cfg["num_classes"])
        self.in_proj = nn.Linear(D, W)
        self.blocks = nn.ModuleList([MLPBlock(W, E) for _ in range(cfg["blocks"])])
        self.out_proj = nn.Linear(W, D)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        e = self.embed(c_noise, labels)
        h = self.in_proj(x)
        for blk in self.blocks:
            h = blk(h, e)
        return self.out_proj(silu(h))

    def zero_init_output(self):
        nn.init.zeros_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)


LENET_DEFAULTS = {"in_channels": 1, "resolution": 28, "classes": 10}


class LeNet(nn.Module):
    """LeNet-5 evaluator (Sources/NN/LeNet.swift): conv5x5 C->6 pad 2, ReLU, avgpool 2, conv5x5 6->16, ReLU,
    avgpool 2, flatten (NCHW order) 400, Linear 120, ReLU, Linear 84, ReLU (= features), Linear classes."""

    arch = "lenet"

    def __init__(self, config: dict | None = None):
        super().__init__()
        self.config = dict(LENET_DEFAULTS, **(config or {}))
        if self.config["resolution"] != 28:
            raise ValueError("lenet: resolution must be 28")
        c = self.config["in_channels"]
        self.conv1 = nn.Conv2d(c, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, self.config["classes"])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = avgpool2x2(F.relu(self.conv1(x)))
        h = avgpool2x2(F.relu(self.conv2(h)))
        h = h.flatten(1)
        return F.relu(self.fc2(F.relu(self.fc1(h))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.features(x))


ARCHS = {"unet": UNet, "mlp": MLPDenoiser, "lenet": LeNet}


def build(arch: str, config: dict | None = None, zero_output: bool = False) -> nn.Module:
    """Spec initialisation: PyTorch defaults (bound 1/sqrt(fan_in) for weight and bias), GroupNorm
    weight 1 / bias 0; the output layer zeroed only when zero_output (EDM's init_zero)."""
    model = ARCHS[arch](config)
    if zero_output:
        model.zero_init_output()
    return model


def randomize(model: nn.Module, generator: torch.Generator | None = None, norm_spread: float = 0.3) -> nn.Module:
    """Random, non-zero parameters everywhere (for fixtures and benchmarks): every Linear/Conv weight and
    bias uniform in +-1/sqrt(fan_in) (re-drawn until no exact zero), GroupNorm weight in 1 +- spread,
    bias in +-spread."""
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (nn.Linear, nn.Conv2d)):
                fan_in = mod.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in)
                for p in (mod.weight, mod.bias):
                    if p is None:
                        continue
                    v = (torch.rand(p.shape, generator=generator) * 2 - 1) * bound
                    v[v == 0] = bound / 2
                    p.copy_(v)
            elif isinstance(mod, nn.GroupNorm):
                mod.weight.copy_(1 + (torch.rand(mod.weight.shape, generator=generator) * 2 - 1) * norm_spread)
                mod.bias.copy_((torch.rand(mod.bias.shape, generator=generator) * 2 - 1) * norm_spread)
    return model


# ---------------------------------------------------------------------------------------------- FLOPs

def flops_per_sample(model: nn.Module) -> int:
    """2 * MACs of all Conv2d and Linear layers for one sample (see module docstring)."""
    cfg = model.config
    total = 0

    def lin(mod):
        return 2 * mod.in_features * mod.out_features

    emb_mods = [model.map_layer0, model.map_layer1] + ([model.map_label] if model.map_label is not None else [])
    total += sum(lin(m) for m in emb_mods)
    if isinstance(model, MLPDenoiser):
        for m in model.modules():
            if isinstance(m, nn.Linear) and m not in emb_mods:
                total += lin(m)
        return total

    # U-Net: trace spatial sizes with hooks on a 1-sample forward.
    counts = []

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            counts.append(2 * mod.in_channels * mod.out_channels * k * out.shape[2] * out.shape[3])
        elif isinstance(mod, nn.Linear) and mod not in emb_mods:
            counts.append(lin(mod))

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        r = cfg["resolution"]
        x = torch.zeros(1, cfg["in_channels"], r, r)
        lab = torch.zeros(1, dtype=torch.long) if cfg["num_classes"] > 0 else None
        with torch.no_grad():
            model(x, torch.zeros(1), lab)
    finally:
        for h in hs:
            h.remove()
    return total + sum(counts)


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# -------------------------------------------------------------------------------------- safetensors

def _normalized_config(model: nn.Module) -> dict:
    cfg = dict(model.config)
    return cfg


def save_safetensors(model: nn.Module, config: dict | None, path: str, extra_metadata: dict | None = None) -> None:
    """Writes all parameters (float32, contiguous) under their spec names with __metadata__
    format=onestep-1, arch, config (JSON)."""
    from safetensors.torch import save_file

    if config is None:
        config = _normalized_config(model)
    tensors = {k: v.detach().to(torch.float32).contiguous().clone() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "arch": model.arch, "config": json.dumps(config)}
    if extra_metadata:
        meta.update(extra_metadata)
    save_file(tensors, path, metadata=meta)


def read_metadata(path: str) -> dict:
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        return dict(f.metadata() or {})


def load_safetensors(path: str) -> tuple[nn.Module, dict]:
    """Reads a OneStep checkpoint; returns (model in eval mode, config dict)."""
    from safetensors.torch import load_file

    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: __metadata__ format is {meta.get('format')!r}, expected {FORMAT!r}")
    arch = meta.get("arch")
    if arch not in ARCHS:
        raise ValueError(f"{path}: unknown arch {arch!r}")
    config = json.loads(meta["config"])
    model = ARCHS[arch](config)
    state = load_file(path)
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)
    model.eval()
    return model, config


if __name__ == "__main__":
    for arch in ("unet", "mlp"):
        m = build(arch)
        print(arch, "params", param_count(m), "GFLOP/sample", flops_per_sample(m) / 1e9)
        for k, v in m.state_dict().items():
            print("  ", k, tuple(v.shape))
