#!/usr/bin/env python3
"""Writes the PyTorch fixtures the Swift NN tests compare against (format: tools/README.md).

    .venv/bin/python tools/make_fixtures.py --out Tests/NNTests/Fixtures

One safetensors file per case. Inputs and parameters are drawn as float32 (torch.manual_seed fixed per
case); the reference output and gradients are then computed in float64 from exactly those float32
values and rounded to float32 once, so the stored values are the correctly rounded answer and the
Swift float32 results differ from them only by their own rounding error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nn_reference as ref  # noqa: E402

SEED = 20240611


class Silu(nn.Module):
    def forward(self, x):
        return ref.silu(x)


class Upsample(nn.Module):
    def forward(self, x):
        return ref.upsample_nearest2x(x)


class AvgPool(nn.Module):
    def forward(self, x):
        return ref.avgpool2x2(x)


def randn(*shape, scale=1.0):
    return torch.randn(*shape, dtype=torch.float32) * scale


def c_noise_values(b):
    return torch.rand(b, dtype=torch.float32) * 5 - 3  # uniform in [-3, 2]


def case_defs():
    """name -> function returning dict(module, config, inputs: dict name->tensor, kind)."""
    d = {}

    def linear():
        m = nn.Linear(5, 3)
        return dict(module=m, config={"in_features": 5, "out_features": 3}, inputs={"input": randn(4, 5)})

    d["linear"] = linear

    def conv(name, k, s, p, h, w):
        def f():
            m = nn.Conv2d(3, 4, k, stride=s, padding=p)
            cfg = {"in_channels": 3, "out_channels": 4, "kernel_size": k, "stride": s, "padding": p}
            return dict(module=m, config=cfg, inputs={"input": randn(2, 3, h, w)})

        d[name] = f

    conv("conv3x3_s1_p1", 3, 1, 1, 7, 7)
    conv("conv3x3_s2_p1", 3, 2, 1, 7, 7)
    conv("conv1x1", 1, 1, 0, 7, 7)
    conv("conv3x3_s1_p1_6x5", 3, 1, 1, 6, 5)
    conv("conv3x3_s2_p1_6x5", 3, 2, 1, 6, 5)

    def groupnorm():
        m = nn.GroupNorm(2, 8, eps=1e-5)
        cfg = {"channels": 8, "groups": 2, "eps": 1e-5}
        # non-zero mean and non-unit spread so normalisation actually matters
        return dict(module=m, config=cfg, inputs={"input": randn(2, 8, 5, 5, scale=2.0) + 0.5})

    d["groupnorm"] = groupnorm

    d["silu"] = lambda: dict(module=Silu(), config={}, inputs={"input": randn(2, 3, 4, 5, scale=3.0)})

    def posemb():
        return dict(module=ref.PositionalEmbedding(8), config={"noise_channels": 8},
                    inputs={"input": c_noise_values(5)}, no_grad=True)

    d["positional_embedding"] = posemb

    d["upsample_nearest2x"] = lambda: dict(module=Upsample(), config={"scale": 2},
                                           inputs={"input": randn(2, 3, 3, 4)})
    d["avgpool2x2"] = lambda: dict(module=AvgPool(), config={"kernel_size": 2, "stride": 2},
                                   inputs={"input": randn(2, 3, 6, 4)})

    def resblock(cout):
        def f():
            m = ref.ResBlock(8, cout, 16)
            cfg = {"in_channels": 8, "out_channels": cout, "emb_channels": 16}
            return dict(module=m, config=cfg, inputs={"input": randn(2, 8, 6, 6), "emb": randn(2, 16)})

        return f

    d["resblock_same"] = resblock(8)
    d["resblock_skip"] = resblock(16)

    def mlp_block():
        m = ref.MLPBlock(16, 16)
        return dict(module=m, config={"width": 16, "emb_channels": 16},
                    inputs={"input": randn(4, 16), "emb": randn(4, 16)})

    d["mlp_block"] = mlp_block

    unet_cfg = {"in_channels": 1, "out_channels": 1, "resolution": 12, "channels": [8, 16, 16],
                "blocks_per_level": 2, "noise_channels": 8, "emb_channels": 16, "num_classes": 0}

    def unet(num_classes, null_label=False):
        def f():
            cfg = dict(unet_cfg, num_classes=num_classes)
            m = ref.UNet(cfg)
            inputs = {"input": randn(2, 1, 12, 12), "c_noise": c_noise_values(2)}
            if num_classes:
                inputs["labels"] = torch.randint(0, num_classes, (2,), dtype=torch.int64)
                if null_label:
                    inputs["labels"][1] = -1  # the null label: a zero one-hot
            return dict(module=m, config=m.config, inputs=inputs, network=True)

        return f

    d["unet_small"] = unet(0)
    d["unet_small_cond"] = unet(10)
    d["unet_small_cond_null"] = unet(10, null_label=True)

    def mlp(dim, num_classes):
        def f():
            cfg = {"dim": dim, "width": 16, "blocks": 2, "noise_channels": 8, "emb_channels": 16,
                   "num_classes": num_classes}
            m = ref.MLPDenoiser(cfg)
            inputs = {"input": randn(4, dim), "c_noise": c_noise_values(4)}
            if num_classes:
                inputs["labels"] = torch.randint(0, num_classes, (4,), dtype=torch.int64)
            return dict(module=m, config=m.config, inputs=inputs, network=True)

        return f

    d["mlp_small"] = mlp(2, 0)
    d["mlp_small_cond"] = mlp(64, 10)

    def lenet():
        m = ref.LeNet()
        # inputs in [-1, 1] like images; the penultimate features are stored too (`features`)
        return dict(module=m, config=m.config, inputs={"input": torch.rand(3, 1, 28, 28) * 2 - 1},
                    features=True)

    d["lenet"] = lenet
    return d


def save_canonical(tensors, path, metadata):
    """safetensors writer with a deterministic header (keys sorted, metadata sorted), so that
    regenerating the fixtures is byte-identical (safetensors' own writer orders __metadata__ by hash)."""
    import struct

    dtypes = {torch.float32: "F32", torch.int64: "I64"}
    header = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, off = [], 0
    # larger element size first, then by name (like safetensors' writer): every tensor's data starts at
    # a multiple of its element size from the file start (the header length is padded to 8).
    for k in sorted(tensors, key=lambda k: (-tensors[k].element_size(), k)):
        t = tensors[k].contiguous()
        b = t.numpy().tobytes()
        header[k] = {"dtype": dtypes[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def make_case(name, fn):
    torch.manual_seed(SEED + sum(map(ord, name)))
    spec = fn()
    module = spec["module"]
    ref.randomize(module)  # non-zero everywhere; GroupNorm weight 1+-0.3, bias +-0.3
    inputs = spec["inputs"]
    network = spec.get("network", False)
    no_grad = spec.get("no_grad", False)

    tensors = {}
    for k, v in inputs.items():
        tensors[k] = v.contiguous()
    params32 = {k: v.detach().clone().to(torch.float32) for k, v in module.state_dict().items()}
    for k, v in params32.items():
        assert torch.all(v != 0), f"{name}: zero in {k}"
        tensors[f"param.{k}"] = v.contiguous()

    # float64 evaluation on exactly the float32 values
    module64 = module.double()
    x64 = {k: (v.double() if v.is_floating_point() else v).requires_grad_(v.is_floating_point() and not no_grad
                                                                          and k in ("input", "emb"))
           for k, v in inputs.items()}
    if network:
        out = module64(x64["input"], x64["c_noise"], x64.get("labels"))
    elif "emb" in x64:
        out = module64(x64["input"], x64["emb"])
    else:
        out = module64(x64["input"])
    tensors["output"] = out.detach().to(torch.float32).contiguous()
    if spec.get("features", False):
        tensors["features"] = module64.features(x64["input"]).detach().to(torch.float32).contiguous()

    if not no_grad:
        dout = randn(*out.shape)
        tensors["dout"] = dout
        loss = (out * dout.double()).sum()
        params = dict(module64.named_parameters())
        wrt_names = [k for k in ("input", "emb") if k in x64]
        grads = torch.autograd.grad(loss, [x64[k] for k in wrt_names] + list(params.values()))
        for k, g in zip(wrt_names, grads[: len(wrt_names)]):
            tensors[f"grad.{k}"] = g.to(torch.float32).contiguous()
        for k, g in zip(params.keys(), grads[len(wrt_names):]):
            tensors[f"grad.param.{k}"] = g.to(torch.float32).contiguous()
        assert set(params.keys()) == set(params32.keys())

    meta = {"case": name, "config": json.dumps(spec["config"]), "reference": "float64-from-float32"}
    if network or spec.get("features", False):
        meta["arch"] = module.arch
        meta["format"] = ref.FORMAT
    return tensors, meta


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="Tests/NNTests/Fixtures")
    ap.add_argument("--only", default=None, help="comma-separated case names")
    args = ap.parse_args()
    from safetensors import safe_open
    from safetensors.torch import load_file

    os.makedirs(args.out, exist_ok=True)
    defs = case_defs()
    names = args.only.split(",") if args.only else list(defs)
    total = 0
    for name in names:
        tensors, meta = make_case(name, defs[name])
        path = os.path.join(args.out, f"{name}.safetensors")
        save_canonical(tensors, path, meta)
        back = load_file(path)  # round-trip check through the official reader
        assert back.keys() == tensors.keys() and all(torch.equal(back[k], tensors[k]) for k in back)
        with safe_open(path, framework="pt") as f:
            assert f.metadata() == meta
        size = os.path.getsize(path)
        total += size
        print(f"{path}  {size} bytes  {len(tensors)} tensors")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
