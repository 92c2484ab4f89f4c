#!/usr/bin/env python3
"""Speed and agreement of the peers (PyTorch CPU, onnxruntime CPU) on the Swift engine's weights.

    .venv/bin/python tools/bench_peers.py --weights .build/bench-weights [--threads 1,2]
        [--batches 1,64,256] [--repeats 10]
    .venv/bin/python tools/bench_peers.py --self-test [--repeats 3]

DIR holds unet.safetensors and mlp.safetensors (OneStep checkpoints, format onestep-1; written by
`onestep bench --export-weights DIR`) and io.safetensors with unet.x, unet.c_noise, unet.y
(Swift's output for that input), optionally unet.labels (int64), and the same under mlp.

For each network, engine, thread count and batch: forward best/median ms over --repeats timed runs
(after --warmup untimed ones), samples/s = batch / median, GFLOP/s = batch * FLOP/sample / median.
FLOP/sample = 2 * MACs of every Conv2d and Linear (Conv: 2*Cout*Cin*k*k*Hout*Wout, Linear:
2*in*out, embedding MLP and map_label included; biases, norms, activations, resize, adds not
counted); see nn_reference.flops_per_sample. One PyTorch training step at --train-batch (64):
forward + backward + Adam on loss = mean((F(x, c_noise) - target)^2); its GFLOP/s counts
3 * forward FLOPs (forward 1x, backward 2x).

--self-test writes random (non-zero) weights for the spec's default U-Net and MLP and an io file
computed by PyTorch into a temporary directory (or --weights DIR if given) and runs everything.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nn_reference as ref  # noqa: E402

NETS = ("unet", "mlp")


def ints(s):
    return [int(v) for v in s.split(",") if v.strip()]


def write_self_test(dir_, io_batch=4, seed=0):
    from safetensors.torch import save_file

    os.makedirs(dir_, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    io = {}
    for arch, cfg in (("unet", {}), ("mlp", {"dim": 2, "width": 128, "blocks": 3})):
        m = ref.randomize(ref.build(arch, cfg), generator=gen)
        m.eval()
        ref.save_safetensors(m, m.config, os.path.join(dir_, f"{arch}.safetensors"))
        x = random_input(m, io_batch, gen)
        with torch.inference_mode():
            y = m(*x)
        io[f"{arch}.x"], io[f"{arch}.c_noise"] = x[0], x[1]
        if x[2] is not None:
            io[f"{arch}.labels"] = x[2]
        io[f"{arch}.y"] = y.contiguous()
    save_file(io, os.path.join(dir_, "io.safetensors"))


def random_input(model, b, gen=None):
    cfg = model.config
    if isinstance(model, ref.UNet):
        r = cfg["resolution"]
        x = torch.randn(b, cfg["in_channels"], r, r, generator=gen)
    else:
        x = torch.randn(b, cfg["dim"], generator=gen)
    c = torch.rand(b, generator=gen) * 5 - 3
    lab = torch.randint(0, cfg["num_classes"], (b,), generator=gen) if cfg["num_classes"] > 0 else None
    return x, c, lab


def feed(x, c, lab):
    f = {"x": x.numpy(), "c_noise": c.numpy().astype(np.float32)}
    if lab is not None:
        f["labels"] = lab.numpy().astype(np.int64)
    return f


def timeit(fn, repeats, warmup):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return min(ts), statistics.median(ts)


def ort_session(model_bytes, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def side_by_side(swift, peer_rows):
    """Rows of the combined table from the Swift bench's JSON rows and this run's peer rows.

    Key: (network, kind, batch, threads) with kind "forward" or "train". Ratios are peer median /
    OneStep median (above 1: OneStep is faster). The ceiling is the fastest sgemm row of the Swift run
    at that thread count; "% of sgemm" is OneStep's GFLOP/s over it.
    """
    ceiling = {}
    for r in swift["rows"]:
        if r["engine"] == "sgemm":
            ceiling[r["threads"]] = max(ceiling.get(r["threads"], 0.0), r["gflops"])
    peers = {}
    for e, a, b, t, _best, med, _sps, _gfs in peer_rows:
        kind = "train" if e.endswith("train") else "forward"
        peers[(a, kind, int(b), int(t), e.split()[0])] = med
    out = []
    for r in swift["rows"]:
        kind = {"swift": "forward", "swift train": "train"}.get(r["engine"])
        if kind is None:
            continue
        key = (r["network"], kind, int(r["batch"]), int(r["threads"]))
        ort, pt = peers.get(key + ("onnxruntime",)), peers.get(key + ("pytorch",))
        best_peer = min([m for m in (ort, pt) if m is not None], default=None)
        ceil = ceiling.get(r["threads"])
        out.append(dict(network=key[0], kind=kind, batch=key[2], threads=key[3], onestep=r["median_ms"], ort=ort, pt=pt,
                        vs_best=(best_peer / r["median_ms"]) if best_peer else None, gflops=r["gflops"],
                        ceiling=ceil, pct=(100 * r["gflops"] / ceil) if ceil else None))
    return out


def print_side_by_side(path, peer_rows):
    import json
    with open(path) as f:
        swift = json.load(f)
    print(f"\nSide by side, medians in ms (OneStep: {swift['date']}, {swift['cpu']}, {swift['cores']} cores; "
          f"{swift['gemm']}; {swift['convolutions']}; load average after {swift['load_average_after']}):\n")
    print("| network | row | batch | threads | OneStep ms | onnxruntime ms | PyTorch ms | OneStep vs best peer "
          "| OneStep GFLOP/s | sgemm ceiling | % of ceiling |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    for r in side_by_side(swift, peer_rows):
        print(f"| {r['network']} | {r['kind']} | {r['batch']} | {r['threads']} | {r['onestep']:.3f} | {f(r['ort'], '.3f')} "
              f"| {f(r['pt'], '.3f')} | {f(r['vs_best'], '.2f')}x | {r['gflops']:.2f} | {f(r['ceiling'], '.1f')} "
              f"| {f(r['pct'], '.0f')}% |")
    print("\n(OneStep vs best peer: the faster peer's median over OneStep's; above 1x OneStep is faster. "
          "sgemm ceiling: the fastest sgemm row of the same OneStep run at that thread count.)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None, help="directory with unet/mlp/io .safetensors")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="1,64,256")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--train-batch", type=int, default=64)
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--no-onnx", action="store_true")
    ap.add_argument("--onnx-groupnorm", choices=["native", "instancenorm"], default="native",
                    help="GroupNormalization (opset 21) or Reshape+InstanceNormalization")
    ap.add_argument("--save-onnx", default=None, help="also write <DIR>/{unet,mlp}.onnx")
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--swift-json", default=None,
                    help="rows of `onestep bench --json FILE` from the same session: also print one side-by-side "
                         "table (OneStep, onnxruntime, PyTorch, ratios, the same-run sgemm ceiling)")
    args = ap.parse_args()

    threads, batches = ints(args.threads), ints(args.batches)
    torch.set_num_interop_threads(1)

    tmp = None
    wdir = args.weights
    if args.self_test:
        if wdir is None:
            tmp = tempfile.TemporaryDirectory(prefix="onestep-selftest-")
            wdir = tmp.name
        write_self_test(wdir)
        print(f"self-test: wrote random weights and io to {wdir}")
    if wdir is None:
        ap.error("--weights DIR or --self-test is required")

    from safetensors.torch import load_file

    io_path = os.path.join(wdir, "io.safetensors")
    io = load_file(io_path) if os.path.exists(io_path) else {}

    print(f"torch {torch.__version__}", end="")
    if not args.no_onnx:
        import onnx
        import onnxruntime as ort

        import onnx_export

        print(f", onnx {onnx.__version__}, onnxruntime {ort.__version__} (GroupNorm as {args.onnx_groupnorm})", end="")
    print(f"; CPUs visible: {os.cpu_count()}\n")

    rows, diffs, models = [], [], {}
    for arch in NETS:
        path = os.path.join(wdir, f"{arch}.safetensors")
        if not os.path.exists(path):
            print(f"(no {path}; skipping {arch})")
            continue
        model, cfg = ref.load_safetensors(path)
        if model.arch != arch:
            raise SystemExit(f"{path}: arch is {model.arch}, expected {arch}")
        fl = ref.flops_per_sample(model)
        models[arch] = (model, cfg, fl)
        print(f"{arch}: config {cfg}\n  parameters {ref.param_count(model):,}  "
              f"GFLOP/sample {fl / 1e9:.6f}")

        onnx_bytes = None
        if not args.no_onnx:
            mp = onnx_export.build_onnx(model, groupnorm=args.onnx_groupnorm)
            onnx_bytes = mp.SerializeToString()
            if args.save_onnx:
                os.makedirs(args.save_onnx, exist_ok=True)
                with open(os.path.join(args.save_onnx, f"{arch}.onnx"), "wb") as f:
                    f.write(onnx_bytes)

        # agreement on the io sample (Swift's y) ---------------------------------------------------
        if f"{arch}.x" in io:
            x, c = io[f"{arch}.x"].float(), io[f"{arch}.c_noise"].float()
            lab = io.get(f"{arch}.labels")
            lab = lab.long() if lab is not None else None
            with torch.inference_mode():
                yt = model(x, c, lab).numpy()
            ys = io[f"{arch}.y"].float().numpy() if f"{arch}.y" in io else None
            yo = ort_session(onnx_bytes, 1).run(None, feed(x, c, lab))[0] if onnx_bytes else None
            scale = float(np.abs(yt).max())
            io_name = "io.y (torch, self-test)" if args.self_test else "swift"
            pairs = [("torch", yt, io_name, ys), ("onnxruntime", yo, io_name, ys), ("torch", yt, "onnxruntime", yo)]
            for a, ya, b, yb in pairs:
                if ya is not None and yb is not None:
                    diffs.append((arch, f"{a} vs {b}", x.shape[0], float(np.abs(ya - yb).max()), scale))

        # forward timings ----------------------------------------------------------------------------
        gen = torch.Generator().manual_seed(1)
        inputs = {b: random_input(model, b, gen) for b in batches}
        for t in threads:
            torch.set_num_threads(t)
            for b in batches:
                x, c, lab = inputs[b]

                def run_torch():
                    with torch.inference_mode():
                        model(x, c, lab)

                best, med = timeit(run_torch, args.repeats, args.warmup)
                rows.append(("pytorch", arch, b, t, best, med, b * 1e3 / med, b * fl / med / 1e6))
            if onnx_bytes:
                sess = ort_session(onnx_bytes, t)
                for b in batches:
                    fd = feed(*inputs[b])
                    best, med = timeit(lambda: sess.run(None, fd), args.repeats, args.warmup)
                    rows.append(("onnxruntime", arch, b, t, best, med, b * 1e3 / med, b * fl / med / 1e6))
                del sess
            if not args.no_train:
                tb = args.train_batch
                tm = copy.deepcopy(model).train()
                opt = torch.optim.Adam(tm.parameters(), lr=1e-4)
                x, c, lab = random_input(tm, tb, gen)
                target = torch.randn(x.shape, generator=gen)

                def step():
                    opt.zero_grad(set_to_none=True)
                    loss = ((tm(x, c, lab) - target) ** 2).mean()
                    loss.backward()
                    opt.step()

                best, med = timeit(step, args.repeats, max(1, args.warmup))
                rows.append(("pytorch train", arch, tb, t, best, med, tb * 1e3 / med, 3 * tb * fl / med / 1e6))
                del tm, opt

    print()
    print("| engine | network | batch | threads | best ms | median ms | samples/s | GFLOP/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for e, a, b, t, best, med, sps, gfs in rows:
        print(f"| {e} | {a} | {b} | {t} | {best:.3f} | {med:.3f} | {sps:,.0f} | {gfs:.2f} |")
    print("\n(pytorch train: one step = forward + backward + Adam, GFLOP/s counts 3x forward FLOPs)")

    if args.swift_json:
        print_side_by_side(args.swift_json, rows)

    if diffs:
        print("\n| network | comparison | batch | max abs diff | max abs output |")
        print("|---|---|---:|---:|---:|")
        for a, what, b, d, s in diffs:
            print(f"| {a} | {what} | {b} | {d:.3e} | {s:.3g} |")
    else:
        print("\n(no io.safetensors: output agreement not checked)")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
