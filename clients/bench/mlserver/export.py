#!/usr/bin/env python3
"""Exports a OneStep generator snapshot for the MLServer + onnxruntime peer, and writes MLServer
configurations for it.

    .venv/bin/python clients/bench/mlserver/export.py model --out DIR
        [--snapshot models/serve/mnist-onestep/2/model.safetensors] [--groupnorm native]
    .venv/bin/python clients/bench/mlserver/export.py settings --model-dir DIR --root ROOT
        --workers W --threads T --grpc-port P --http-port Q [--name mnist-onestep]

`model` writes DIR/model.onnx (the raw network F(x, c_noise[, labels]) -> y, built by
tools/onnx_export.py from the tools/nn_reference.py model) and DIR/generator.json (arch, sample
shape, num_classes, sigma_init, sigma_data from the snapshot's metadata). The EDM preconditioning
around F (c_skip, c_out, c_in, c_noise) and the Philox noise are applied by runtime.py.

`settings` writes ROOT/settings.json (ports, `parallel_workers` = W, metrics off) and
ROOT/NAME/model-settings.json (runtime `runtime.OneStepONNXRuntime`, adaptive batching
`max_batch_size` 64 / `max_batch_time` 0.002 s, onnxruntime intra-op threads T). Start with
`mlserver start ROOT` from the mlserver venv with PYTHONPATH including clients/bench/mlserver.

`model` needs torch, onnx and safetensors (the project's .venv); `settings` needs only the
standard library (serve_peers.py imports it from any venv).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
DEFAULT_SNAPSHOT = os.path.join(ROOT, "models", "serve", "mnist-onestep", "2", "model.safetensors")
DEFAULT_NAME = "mnist-onestep"
DEFAULT_SIGMA_INIT = 2.5   # OneStepGenerator.defaultSigmaInit
DEFAULT_SIGMA_DATA = 0.5   # EDMDenoiser.defaultSigmaData


def export_model(snapshot: str, out_dir: str, groupnorm: str = "native") -> dict:
    """Writes out_dir/model.onnx and out_dir/generator.json; returns the generator description."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import nn_reference as ref  # noqa: E402
    import onnx_export  # noqa: E402
    import torch
    from safetensors.torch import load_file

    meta = ref.read_metadata(snapshot)
    if meta.get("format") != ref.FORMAT:
        raise SystemExit(f"{snapshot}: format {meta.get('format')!r}, expected {ref.FORMAT!r}")
    kind = meta.get("kind", "generator")
    if kind != "generator":
        raise SystemExit(f"{snapshot}: kind {kind!r}; only one-step generators are served by this peer")
    arch = meta.get("arch")
    if arch not in ref.ARCHS:
        raise SystemExit(f"{snapshot}: unknown arch {arch!r}")
    config = json.loads(meta["config"])
    model = ref.ARCHS[arch](config)
    # A generator snapshot may also hold its ratio classifier under "classifier."; keep the network's
    # own parameters (the names model.state_dict() has).
    want = set(model.state_dict().keys())
    state = {k: v.to(torch.float32) for k, v in load_file(snapshot).items() if k in want}
    model.load_state_dict(state, strict=True)
    model.eval()

    os.makedirs(out_dir, exist_ok=True)
    mp = onnx_export.build_onnx(model, groupnorm=groupnorm)
    with open(os.path.join(out_dir, "model.onnx"), "wb") as f:
        f.write(mp.SerializeToString())
    if arch == "unet":
        shape = [config["in_channels"], config["resolution"], config["resolution"]]
    else:
        shape = [config["dim"]]
    gen = {
        "snapshot": os.path.abspath(snapshot),
        "arch": arch,
        "sample_shape": shape,
        "num_classes": int(config.get("num_classes", 0)),
        "sigma_init": float(meta.get("sigma_init", DEFAULT_SIGMA_INIT)),
        "sigma_data": float(meta.get("sigma_data", DEFAULT_SIGMA_DATA)),
        "onnx": "model.onnx",
        "onnx_groupnorm": groupnorm,
    }
    with open(os.path.join(out_dir, "generator.json"), "w") as f:
        json.dump(gen, f, indent=2)
        f.write("\n")
    return gen


def write_settings(root: str, model_dir: str, workers: int, threads: int, grpc_port: int, http_port: int,
                   name: str = DEFAULT_NAME, max_batch_size: int = 64, max_batch_time: float = 0.002) -> None:
    """ROOT/settings.json and ROOT/NAME/model-settings.json for one configuration."""
    os.makedirs(os.path.join(root, name), exist_ok=True)
    settings = {
        "debug": False,
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "parallel_workers": workers,
        "metrics_endpoint": None,      # no Prometheus endpoint / metrics server
        "load_models_at_startup": True,
        "model_repository_root": os.path.abspath(root),
    }
    with open(os.path.join(root, "settings.json"), "w") as f:
        json.dump(settings, f, indent=2)
        f.write("\n")
    model_dir = os.path.abspath(model_dir)
    ms = {
        "name": name,
        "implementation": "runtime.OneStepONNXRuntime",
        "max_batch_size": max_batch_size,
        "max_batch_time": max_batch_time,
        "parameters": {
            "uri": os.path.join(model_dir, "model.onnx"),
            "extra": {
                "generator": os.path.join(model_dir, "generator.json"),
                "intra_op_threads": threads,
            },
        },
    }
    with open(os.path.join(root, name, "model-settings.json"), "w") as f:
        json.dump(ms, f, indent=2)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("model", help="write model.onnx + generator.json")
    m.add_argument("--snapshot", default=DEFAULT_SNAPSHOT)
    m.add_argument("--out", required=True)
    m.add_argument("--groupnorm", choices=["native", "instancenorm"], default="native")
    s = sub.add_parser("settings", help="write settings.json + model-settings.json")
    s.add_argument("--model-dir", required=True, help="directory with model.onnx and generator.json")
    s.add_argument("--root", required=True, help="MLServer model repository root to write")
    s.add_argument("--workers", type=int, required=True, help="MLServer parallel_workers")
    s.add_argument("--threads", type=int, required=True, help="onnxruntime intra-op threads per worker")
    s.add_argument("--grpc-port", type=int, required=True)
    s.add_argument("--http-port", type=int, required=True)
    s.add_argument("--name", default=DEFAULT_NAME)
    s.add_argument("--max-batch-size", type=int, default=64)
    s.add_argument("--max-batch-time", type=float, default=0.002)
    args = ap.parse_args()
    if args.cmd == "model":
        print(json.dumps(export_model(args.snapshot, args.out, args.groupnorm), indent=2))
    else:
        write_settings(args.root, args.model_dir, args.workers, args.threads, args.grpc_port, args.http_port,
                       args.name, args.max_batch_size, args.max_batch_time)


if __name__ == "__main__":
    main()
