#!/usr/bin/env python3
"""Writes the reference values the Swift metric tests compare against (Sources/Training/Metrics).

    .venv/bin/python -m pip install scipy==1.17.1      # only for generating; tests never need it
    .venv/bin/python tools/make_metric_fixtures.py [--out Tests/TrainingTests/Fixtures/metrics.safetensors]

Fixed random float32 arrays (a fixed numpy seed) and the numpy/scipy values computed in float64 from
exactly those float32 values:

- features `feat.a` [200, 8], `feat.b` [150, 8] (correlated Gaussians with different means/covariances)
- FD: scipy.linalg.sqrtm((S1 + eps I)(S2 + eps I)), eps = 1e-6, S the np.cov covariances
- KID: the cubic polynomial kernel (x.y/d + 1)^3, unbiased MMD^2 on the subsets stored in
  `kid.x` / `kid.y` [subsets, m] (I64 indices), per-subset values, mean and std (ddof 0)
- precision/recall (Kynkaanniemi et al. 2019) for k = 3 and k = 5, distances by scipy cdist
- 2-D points `pts.x` [300, 2], `pts.y` [300, 2], `pts.z` [230, 2]; sliced W2 along `sw.dirs`
  [32, 2] (x vs y: equal sizes; x vs z: unequal, exact quantile integral on the union grid);
  RBF MMD^2 (mean of RBF kernels with the bandwidths in metadata `mmd.bandwidths`)

Tensors are F32 (points, features, directions) and I64 (indices); every reference number is in
`__metadata__` as a decimal string with 17 significant digits (the Swift reader turns every tensor
into Float32, too coarse for them). Written by a canonical writer (sorted keys), so regeneration is
byte-identical.
"""

from __future__ import annotations

import argparse
import json
import os
import struct

import numpy as np
import scipy.linalg
from scipy.spatial.distance import cdist

SEED = 20250611
EPS = 1e-6
BANDWIDTHS = [0.05, 0.1, 0.2, 0.5, 1.0, 2.0]


def fd(a, b, eps=EPS):
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    mu1, mu2 = a.mean(0), b.mean(0)
    s1 = np.cov(a, rowvar=False) + eps * np.eye(a.shape[1])
    s2 = np.cov(b, rowvar=False) + eps * np.eye(b.shape[1])
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def kid_subset(x, y):
    """torch-fidelity / clean-fid mmd2 (unbiased) with the cubic polynomial kernel."""
    d = x.shape[1]
    m = x.shape[0]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    a = kxx + kyy
    return float(((a.sum() - np.diag(a).sum()) / (m - 1) - kxy.sum() * 2 / m) / m)


def precision_recall(real, gen, k):
    real = real.astype(np.float64)
    gen = gen.astype(np.float64)
    rr = cdist(real, real)
    gg = cdist(gen, gen)
    rad_r = np.sort(rr, axis=1)[:, k]  # (k+1)-th smallest, self included
    rad_g = np.sort(gg, axis=1)[:, k]
    gr = cdist(gen, real)
    precision = float((gr <= rad_r[None, :]).any(axis=1).mean())
    recall = float((gr.T <= rad_g[None, :]).any(axis=1).mean())
    return precision, recall


def w2sq_1d(a, b):
    """Exact W2^2 between empirical 1-D distributions: integrate (F^-1 - G^-1)^2 over the union grid."""
    a = np.sort(a)
    b = np.sort(b)
    n, m = len(a), len(b)
    grid = np.union1d(np.arange(n + 1) / n, np.arange(m + 1) / m)
    mid = (grid[:-1] + grid[1:]) / 2
    qa = a[np.minimum((mid * n).astype(int), n - 1)]
    qb = b[np.minimum((mid * m).astype(int), m - 1)]
    return float(((qa - qb) ** 2 * np.diff(grid)).sum())


def sliced_w2(x, y, dirs):
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    vals = [w2sq_1d(x @ d, y @ d) for d in dirs.astype(np.float64)]
    return float(np.sqrt(np.mean(vals)))


def mmd_rbf(x, y, bandwidths):
    x = x.astype(np.float64)
    y = y.astype(np.float64)

    def k(a, b):
        d2 = cdist(a, b, "sqeuclidean")
        return np.mean([np.exp(-d2 / (2 * s * s)) for s in bandwidths], axis=0)

    n, m = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                 - 2 * kxy.mean())


def save_canonical(tensors, path, metadata):
    """Deterministic safetensors: keys sorted, data I64 first then F32 (each by name)."""
    dtypes = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}
    header = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, off = [], 0
    for k in sorted(tensors, key=lambda k: (-tensors[k].itemsize, k)):
        t = np.ascontiguousarray(tensors[k])
        b = t.astype(t.dtype.newbyteorder("<")).tobytes()
        header[k] = {"dtype": dtypes[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":"), sort_keys=False).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def g17(v):
    return repr(float(v))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="Tests/TrainingTests/Fixtures/metrics.safetensors")
    args = ap.parse_args()
    rng = np.random.default_rng(SEED)
    d = 8
    la = rng.normal(size=(d, d)) * 0.5 + np.eye(d)
    lb = rng.normal(size=(d, d)) * 0.4 + 0.8 * np.eye(d)
    feat_a = (rng.normal(size=(200, d)) @ la + rng.normal(size=d) * 0.3).astype(np.float32)
    feat_b = (rng.normal(size=(150, d)) @ lb + rng.normal(size=d) * 0.3 + 0.2).astype(np.float32)

    t = {"feat.a": feat_a, "feat.b": feat_b}
    meta = {"case": "metrics", "reference": "numpy/scipy float64 from the float32 arrays",
            "scipy": scipy.__version__, "numpy": np.__version__}

    meta["fd.ab"] = g17(fd(feat_a, feat_b))
    meta["fd.aa"] = g17(fd(feat_a, feat_a))
    meta["fd.eps"] = g17(EPS)

    subsets, m = 10, 50
    kx = np.stack([rng.choice(200, m, replace=False) for _ in range(subsets)]).astype(np.int64)
    ky = np.stack([rng.choice(150, m, replace=False) for _ in range(subsets)]).astype(np.int64)
    t["kid.x"], t["kid.y"] = kx, ky
    a64, b64 = feat_a.astype(np.float64), feat_b.astype(np.float64)
    vals = [kid_subset(a64[kx[s]], b64[ky[s]]) for s in range(subsets)]
    meta["kid.values"] = json.dumps([g17(v) for v in vals])
    meta["kid.mean"] = g17(np.mean(vals))
    meta["kid.std"] = g17(np.std(vals))

    for k in (3, 5):
        p, r = precision_recall(feat_a, feat_b, k)  # real = a, generated = b
        meta[f"pr.k{k}.precision"] = g17(p)
        meta[f"pr.k{k}.recall"] = g17(r)

    ang = rng.uniform(0, 2 * np.pi, size=300)
    px = np.stack([np.cos(ang), np.sin(ang)], 1) * 1.2 + rng.normal(size=(300, 2)) * 0.1
    py = rng.normal(size=(300, 2)) * np.array([0.9, 0.6]) + np.array([0.1, -0.05])
    pz = rng.normal(size=(230, 2)) * 0.7 + np.array([0.3, 0.2])
    t["pts.x"], t["pts.y"], t["pts.z"] = (v.astype(np.float32) for v in (px, py, pz))
    th = rng.uniform(0, 2 * np.pi, size=32)
    dirs = np.stack([np.cos(th), np.sin(th)], 1).astype(np.float32)
    t["sw.dirs"] = dirs
    meta["sw.xy"] = g17(sliced_w2(t["pts.x"], t["pts.y"], dirs))
    meta["sw.xz"] = g17(sliced_w2(t["pts.x"], t["pts.z"], dirs))
    meta["mmd.bandwidths"] = json.dumps(BANDWIDTHS)
    meta["mmd.xy"] = g17(mmd_rbf(t["pts.x"], t["pts.y"], BANDWIDTHS))
    meta["mmd.xz"] = g17(mmd_rbf(t["pts.x"], t["pts.z"], BANDWIDTHS))
    meta["mmd.xx_half"] = g17(mmd_rbf(t["pts.x"][:150], t["pts.x"][150:], BANDWIDTHS))

    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    save_canonical(t, args.out, meta)
    from safetensors.numpy import load_file
    from safetensors import safe_open

    back = load_file(args.out)
    assert back.keys() == t.keys() and all(np.array_equal(back[k], t[k]) for k in t)
    with safe_open(args.out, framework="np") as f:
        assert f.metadata() == meta
    print(f"{args.out}  {os.path.getsize(args.out)} bytes")
    for k, v in sorted(meta.items()):
        print(f"  {k} = {v}")


if __name__ == "__main__":
    main()
