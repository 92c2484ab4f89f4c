"""Builds an ONNX graph (onnx.helper, no torch.onnx) of a OneStep network from its spec weights.

    model_proto = build_onnx(model)          # model: nn_reference.UNet / MLPDenoiser
    inputs: x [B,...] float, c_noise [B] float, labels [B] int64 (only with num_classes > 0)
    output: y

GroupNorm is emitted either as ONNX GroupNormalization (opset 21 semantics: per-channel scale/bias)
or, with groupnorm="instancenorm", as Reshape [B, G, -1] -> InstanceNormalization(ones, zeros)
-> Reshape back -> Mul(weight[C,1,1]) -> Add(bias[C,1,1]). Both are checked against PyTorch by
bench_peers.py (both agree with PyTorch to ~2e-6 on onnxruntime 1.32, opset 21); "native" is the
default, "instancenorm" the fallback for runtimes whose GroupNormalization is missing or uses the
opset-18 per-group scale semantics.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import torch.nn as nn
from onnx import TensorProto, helper, numpy_helper

import nn_reference as ref


class _G:
    def __init__(self, groupnorm: str):
        self.nodes, self.inits, self.n = [], [], 0
        self.gn_mode = groupnorm
        self.consts = {}

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def init(self, name, arr):
        arr = np.asarray(arr)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def const(self, key, arr):
        if key not in self.consts:
            self.consts[key] = self.init(f"const.{key}", arr)
        return self.consts[key]

    def op(self, op_type, inputs, **attrs):
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    # layers -------------------------------------------------------------------------------------
    def param(self, prefix, mod: nn.Module, which):
        t = getattr(mod, which)
        return self.init(f"{prefix}.{which}", t.detach().float().numpy())

    def linear(self, x, mod: nn.Linear, prefix):
        w = self.param(prefix, mod, "weight")
        if mod.bias is None:
            return self.op("Gemm", [x, w], transB=1)
        return self.op("Gemm", [x, w, self.param(prefix, mod, "bias")], transB=1)

    def conv(self, x, mod: nn.Conv2d, prefix):
        k = mod.kernel_size[0]
        p = mod.padding[0]
        s = mod.stride[0]
        return self.op("Conv", [x, self.param(prefix, mod, "weight"), self.param(prefix, mod, "bias")],
                       kernel_shape=[k, k], pads=[p, p, p, p], strides=[s, s])

    def silu(self, x):
        return self.op("Mul", [x, self.op("Sigmoid", [x])])

    def groupnorm(self, x, mod: nn.GroupNorm, prefix):
        C, G = mod.num_channels, mod.num_groups
        if self.gn_mode == "native":
            return self.op("GroupNormalization",
                           [x, self.param(prefix, mod, "weight"), self.param(prefix, mod, "bias")],
                           num_groups=G, epsilon=mod.eps)
        shape_g = self.const(f"shape_g{G}", np.array([0, G, -1], dtype=np.int64))
        r = self.op("Reshape", [x, shape_g])
        ones = self.const(f"ones{G}", np.ones(G, dtype=np.float32))
        zeros = self.const(f"zeros{G}", np.zeros(G, dtype=np.float32))
        n = self.op("InstanceNormalization", [r, ones, zeros], epsilon=mod.eps)
        shp = self.op("Shape", [x])
        b = self.op("Reshape", [n, shp])
        w = self.init(f"{prefix}.weight", mod.weight.detach().float().numpy().reshape(C, 1, 1))
        bb = self.init(f"{prefix}.bias", mod.bias.detach().float().numpy().reshape(C, 1, 1))
        return self.op("Add", [self.op("Mul", [b, w]), bb])

    def upsample(self, x):
        scales = self.const("up_scales", np.array([1, 1, 2, 2], dtype=np.float32))
        return self.op("Resize", [x, "", scales], mode="nearest",
                       coordinate_transformation_mode="asymmetric", nearest_mode="floor")

    def resblock(self, x, e, blk: ref.ResBlock, prefix):
        h = self.conv(self.silu(self.groupnorm(x, blk.norm0, f"{prefix}.norm0")), blk.conv0, f"{prefix}.conv0")
        a = self.linear(e, blk.affine, f"{prefix}.affine")
        a4 = self.op("Unsqueeze", [a, self.const("axes23", np.array([2, 3], dtype=np.int64))])
        h = self.op("Add", [h, a4])
        h = self.conv(self.silu(self.groupnorm(h, blk.norm1, f"{prefix}.norm1")), blk.conv1, f"{prefix}.conv1")
        s = self.conv(x, blk.skip, f"{prefix}.skip") if blk.skip is not None else x
        return self.op("Mul", [self.op("Add", [h, s]), self.const("sqrt_half", np.array(math.sqrt(0.5), dtype=np.float32))])

    def embedding(self, model, c_noise, labels):
        N = model.map_noise.num_channels
        half = N // 2
        freqs = ((1.0 / model.map_noise.max_positions) ** (np.arange(half, dtype=np.float64) / half)).astype(np.float32)
        c2 = self.op("Unsqueeze", [c_noise, self.const("axes1", np.array([1], dtype=np.int64))])
        a = self.op("Mul", [c2, self.init("freqs", freqs.reshape(1, half))])
        e = self.op("Concat", [self.op("Cos", [a]), self.op("Sin", [a])], axis=1)
        if model.map_label is not None:
            table = self.init("map_label.weight_t", model.map_label.weight.detach().float().numpy().T.copy())
            e = self.op("Add", [e, self.op("Gather", [table, labels], axis=0)])
        e = self.silu(self.linear(e, model.map_layer0, "map_layer0"))
        e = self.silu(self.linear(e, model.map_layer1, "map_layer1"))
        return e


def build_onnx(model: nn.Module, groupnorm: str = "native", opset: int = 21) -> onnx.ModelProto:
    cfg = model.config
    g = _G(groupnorm)
    conditional = cfg["num_classes"] > 0
    if isinstance(model, ref.UNet):
        r = cfg["resolution"]
        x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", cfg["in_channels"], r, r])
        y_info = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", cfg["out_channels"], r, r])
    else:
        x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", cfg["dim"]])
        y_info = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", cfg["dim"]])
    inputs = [x_info, helper.make_tensor_value_info("c_noise", TensorProto.FLOAT, ["B"])]
    if conditional:
        inputs.append(helper.make_tensor_value_info("labels", TensorProto.INT64, ["B"]))

    e = g.embedding(model, "c_noise", "labels" if conditional else None)
    if isinstance(model, ref.UNet):
        ch = cfg["channels"]
        L, nb = len(ch), cfg["blocks_per_level"]
        h = g.conv("x", model.enc.conv_in, "enc.conv_in")
        skips = []
        for l in range(L):
            lv = getattr(model.enc, str(l))
            for i in range(nb):
                h = g.resblock(h, e, getattr(lv, f"block{i}"), f"enc.{l}.block{i}")
                skips.append(h)
            if l < L - 1:
                h = g.conv(h, lv.down, f"enc.{l}.down")
        h = g.resblock(h, e, model.mid.block0, "mid.block0")
        for l in reversed(range(L)):
            lv = getattr(model.dec, str(l))
            for i in range(nb):
                h = g.op("Concat", [h, skips.pop()], axis=1)
                h = g.resblock(h, e, getattr(lv, f"block{i}"), f"dec.{l}.block{i}")
            if l > 0:
                h = g.conv(g.upsample(h), lv.up, f"dec.{l}.up")
        h = g.conv(g.silu(g.groupnorm(h, model.out.norm, "out.norm")), model.out.conv, "out.conv")
    else:
        h = g.linear("x", model.in_proj, "in_proj")
        for i, blk in enumerate(model.blocks):
            p = f"blocks.{i}"
            t = g.op("Add", [g.linear(g.silu(h), blk.fc0, f"{p}.fc0"), g.linear(e, blk.affine, f"{p}.affine")])
            h = g.op("Add", [h, g.linear(g.silu(t), blk.fc1, f"{p}.fc1")])
        h = g.linear(g.silu(h), model.out_proj, "out_proj")
    g.nodes.append(helper.make_node("Identity", [h], ["y"], name="output"))
    graph = helper.make_graph(g.nodes, f"onestep_{model.arch}", inputs, [y_info], initializer=g.inits)
    mp = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="onestep")
    mp.ir_version = min(mp.ir_version, 10)
    onnx.checker.check_model(mp)
    return mp
