"""MLServer custom runtime: the OneStep one-step generator on onnxruntime (CPU).

Same KServe V2 contract as `onestep serve` (Sources/SamplerServer/Services/InferenceService.swift):
input "seed" INT64 [N] (and "label" INT64 [N] for a class-conditional model); outputs "sample"
FP32 [N, ...sample shape] and "seed" INT64 [N] (only the requested ones when outputs are named).
Sample k is (seed[k], index 0):

    z = SampleNoise.fill(seed, index 0)   Philox4x32-10 stream (key = seed, counter words 2,3 =
                                          stream = index) + Box-Muller (Sources/TensorCore/Philox.swift)
    x = sigma_init * z
    D(x, sigma_init) = c_skip x + c_out F(c_in x, c_noise)     (Sources/Diffusion/Precond.swift)

F is model.onnx (tools/onnx_export.py); sigma_init and sigma_data come from generator.json
(written by export.py). model-settings.json: parameters.uri = the .onnx file, parameters.extra =
{"generator": path of generator.json, "intra_op_threads": T}.

The noise code (philox_normals) needs only numpy; `python runtime.py` runs its self-test (Random123
known answers) without MLServer.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

_MASK = np.uint64(0xFFFFFFFF)
_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
_S32 = np.uint64(32)


def philox_blocks(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 on uint64 arrays holding 32-bit words (broadcasting); returns 4 word arrays."""
    for r in range(10):
        if r:
            k0 = (k0 + _W0) & _MASK
            k1 = (k1 + _W1) & _MASK
        p0 = _M0 * c0
        p1 = _M1 * c2
        c0, c1, c2, c3 = (p1 >> _S32) ^ c1 ^ k0, p1 & _MASK, (p0 >> _S32) ^ c3 ^ k1, p0 & _MASK
    return c0, c1, c2, c3


def philox_words(seeds: np.ndarray, stream: int, count: int) -> np.ndarray:
    """The first `count` 32-bit words of the stream (seed, stream) for every seed: uint64 [N, count]."""
    seeds = np.asarray(seeds).astype(np.uint64).reshape(-1, 1)   # int64 -> bit pattern, as UInt64(bitPattern:)
    nb = (count + 3) // 4
    blk = np.arange(nb, dtype=np.uint64).reshape(1, -1)
    c0 = np.broadcast_to(blk & _MASK, (seeds.shape[0], nb))
    c1 = np.broadcast_to(blk >> _S32, (seeds.shape[0], nb))
    c2 = np.uint64(stream & 0xFFFFFFFF)
    c3 = np.uint64((stream >> 32) & 0xFFFFFFFF)
    out = philox_blocks(c0, c1, c2, c3, seeds & _MASK, seeds >> _S32)
    return np.stack(out, axis=-1).reshape(seeds.shape[0], 4 * nb)[:, :count]


def philox_normals(seeds: np.ndarray, n: int, index: int = 0) -> np.ndarray:
    """SampleNoise.fill(seed, index) for each seed: float32 [N, n]. Box-Muller on Double uniforms
    ((u >> 8) + 0.5) 2^-24: r = sqrt(-2 ln u1), t = 2 pi u2, pair (r cos t, r sin t) rounded to Float."""
    pairs = (n + 1) // 2
    w = philox_words(seeds, index, 2 * pairs)
    u = ((w >> np.uint64(8)).astype(np.float64) + 0.5) * 2.0 ** -24
    r = np.sqrt(-2.0 * np.log(u[:, 0::2]))
    t = 2.0 * math.pi * u[:, 1::2]
    out = np.empty((w.shape[0], 2 * pairs), np.float32)
    out[:, 0::2] = r * np.cos(t)
    out[:, 1::2] = r * np.sin(t)
    return out[:, :n]


def edm_coefficients(sigma: float, sigma_data: float):
    """(c_skip, c_out, c_in, c_noise) in Double, each rounded once to Float (EDMCoefficients)."""
    s, sd = float(sigma), float(sigma_data)
    r = math.sqrt(s * s + sd * sd)
    return (np.float32(sd * sd / (s * s + sd * sd)), np.float32(s * sd / r), np.float32(1 / r),
            np.float32(math.log(s) / 4))


class Generator:
    """numpy + onnxruntime one-step generator, independent of MLServer."""

    def __init__(self, onnx_path: str, gen: dict, threads: int = 1):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
        self.sample_shape = [int(v) for v in gen["sample_shape"]]
        self.sample_size = int(np.prod(self.sample_shape))
        self.num_classes = int(gen.get("num_classes", 0))
        self.sigma_init = np.float32(gen["sigma_init"])
        self.c_skip, self.c_out, self.c_in, self.c_noise = edm_coefficients(gen["sigma_init"], gen["sigma_data"])

    def generate(self, seeds: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        n = seeds.shape[0]
        x = philox_normals(seeds, self.sample_size, 0)
        x *= self.sigma_init
        x = x.reshape([n] + self.sample_shape)
        feed = {"x": self.c_in * x, "c_noise": np.full(n, self.c_noise, np.float32)}
        if self.num_classes > 0:
            feed["labels"] = labels.astype(np.int64)
        f = self.session.run(None, feed)[0]
        return self.c_skip * x + self.c_out * f


try:
    from mlserver import MLModel
    from mlserver.codecs import NumpyCodec
    from mlserver.errors import MLServerError
    from mlserver.types import InferenceRequest, InferenceResponse
except ImportError:   # numpy-only use (self-test, noise checks)
    MLModel = object


if MLModel is not object:

    class OneStepONNXRuntime(MLModel):
        async def load(self) -> bool:
            p = self.settings.parameters
            extra = (p.extra if p is not None else None) or {}
            onnx_path = (p.uri if p is not None else None) or extra.get("onnx")
            if not onnx_path:
                raise MLServerError("model-settings: parameters.uri must name the .onnx file")
            gen_path = extra.get("generator") or os.path.join(os.path.dirname(onnx_path), "generator.json")
            with open(gen_path) as f:
                gen = json.load(f)
            self.gen = Generator(onnx_path, gen, int(extra.get("intra_op_threads", 1)))
            return True

        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            seeds = labels = None
            for inp in payload.inputs:
                if inp.name == "seed":
                    seeds = NumpyCodec.decode_input(inp).astype(np.int64).reshape(-1)
                elif inp.name == "label":
                    labels = NumpyCodec.decode_input(inp).astype(np.int64).reshape(-1)
                else:
                    raise MLServerError(f"unknown input '{inp.name}'; this model takes 'seed' (INT64 [N])", 400)
            if seeds is None:
                raise MLServerError("missing input 'seed' (INT64 [N], one seed per sample)", 400)
            if self.gen.num_classes > 0:
                if labels is None or labels.shape[0] != seeds.shape[0]:
                    raise MLServerError("class-conditional model: give 'label' INT64 [N], one per seed", 400)
                if labels.min() < 0 or labels.max() >= self.gen.num_classes:
                    raise MLServerError(f"labels must be in 0..<{self.gen.num_classes}", 400)
            sample = self.gen.generate(seeds, labels)
            wanted = [o.name for o in payload.outputs] if payload.outputs else ["sample", "seed"]
            outputs = []
            for name in wanted:
                if name == "sample":
                    outputs.append(NumpyCodec.encode_output("sample", sample))
                elif name == "seed":
                    outputs.append(NumpyCodec.encode_output("seed", seeds))
                else:
                    raise MLServerError(f"unknown output '{name}'; outputs are 'sample' (FP32) and 'seed' (INT64)", 400)
            return InferenceResponse(model_name=self.name, model_version=self.version, outputs=outputs)


def _self_test():
    # Random123 known-answer tests for philox4x32_10 (kat_vectors).
    kat = [((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
           ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
           ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1))]
    for ctr, key, want in kat:
        got = philox_blocks(*[np.uint64(v) for v in ctr], *[np.uint64(v) for v in key])
        got = tuple(int(v) for v in got)
        assert got == want, f"philox KAT {ctr} {key}: got {[hex(v) for v in got]}, want {[hex(v) for v in want]}"
    # Vectorised stream == word-by-word stream (block index in counter words 0,1; stream in 2,3).
    seeds = np.array([0, 1, -1, 123456789012345], np.int64)
    w = philox_words(seeds, 5, 9)
    for i, s in enumerate(seeds.astype(np.uint64)):
        for j in range(9):
            b = philox_blocks(np.uint64(j // 4), np.uint64(0), np.uint64(5), np.uint64(0),
                              s & _MASK, s >> _S32)
            assert int(w[i, j]) == int(b[j % 4]), (i, j)
    z = philox_normals(np.arange(64), 784)
    assert z.shape == (64, 784) and z.dtype == np.float32
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02, (z.mean(), z.std())
    print("runtime.py self-test: Philox KATs, stream layout and normals OK")


if __name__ == "__main__":
    _self_test()
