"""Continue a OneStep teacher run on a GPU with the PyTorch reference of the same network and recipe.

The Swift trainer (`onestep train teacher`) is the product; this tool answers the issue's question
"what would it take" on hardware this project does not own: it reads a Swift training state
(`runs/NAME/state.safetensors`: raw parameters, Adam moments and step, EMA, images seen, config),
continues exactly the recipe of `TeacherTrainer` (EDM preconditioning and loss, log-normal sigma,
lambda weighting, global-norm clipping, Adam, EMA with half-life in images and ramp-up) on
`nn_reference.UNet` (the same function, weights under the same names), and writes

- EMA snapshots `snapshot-<images>.safetensors` in the Swift snapshot format (the Swift snapshot's
  metadata, provenance updated), loadable by `onestep eval/sample/serve`;
- a training state in the Swift format, so `onestep train teacher --resume` can go on on the CPU;
- `log.jsonl` (step, images_seen, loss, grad_norm, images_per_s).

The data stream differs from the Swift run (torch's RNG instead of Philox), so the continuation is
the same recipe, not the same bits.

    python tools/gpu_teacher.py --state runs/mnist-teacher/state.safetensors \
        --snapshot runs/mnist-teacher/snapshots/latest.safetensors --data train-images-idx3-ubyte.gz \
        --out OUT --seconds 420 --milestones 1000000,2000000,4000000
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nn_reference  # noqa: E402


def read_header(path: str) -> tuple[dict, dict]:
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    meta = header.pop("__metadata__", {})
    return header, meta


def load_tensors(path: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(path)


def registration_order(ema: np.ndarray, named: dict[str, np.ndarray]) -> list[tuple[str, int, tuple]]:
    """The flat state vectors follow the Swift ParameterStore's registration order, which the file
    does not name: recover (name, offset, shape) by finding each EMA tensor of the snapshot written
    from this very state inside the flat EMA vector."""
    order = []
    taken = np.zeros(ema.shape[0], dtype=bool)
    for name, t in named.items():
        flat = t.reshape(-1)
        cands = np.nonzero(ema[: ema.shape[0] - flat.size + 1] == flat[0])[0]
        hit = None
        for c in cands:
            if not taken[c] and np.array_equal(ema[c : c + flat.size], flat):
                hit = int(c)
                break
        if hit is None:
            raise SystemExit(f"{name}: not found in the state's EMA vector (snapshot and state from different steps?)")
        taken[hit : hit + flat.size] = True
        order.append((name, hit, tuple(t.shape)))
    order.sort(key=lambda o: o[1])
    pos = 0
    for name, off, shape in order:
        if off != pos:
            raise SystemExit(f"{name}: offset {off}, expected {pos}: the snapshot does not tile the state")
        pos += int(np.prod(shape))
    if pos != ema.shape[0]:
        raise SystemExit(f"snapshot covers {pos} of {ema.shape[0]} state values")
    return order


def read_idx_images(path: str) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if int.from_bytes(raw[0:4], "big") != 0x803:
        raise SystemExit(f"{path}: not an IDX image file")
    n, h, w = (int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(3))
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, 1, h, w)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", required=True)
    ap.add_argument("--snapshot", required=True, help="the EMA snapshot written with --state (names and metadata)")
    ap.add_argument("--data", required=True, help="MNIST train images, IDX (optionally .gz)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=420)
    ap.add_argument("--images", type=int, default=0, help="stop at this many images seen (0: time only)")
    ap.add_argument("--milestones", default="", help="images-seen values at which to write an EMA snapshot")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--restart-from", default="",
                    help="an EMA snapshot of the same run to start from, with fresh Adam moments and lr warm-up (when its state was lost); "
                         "--state/--snapshot then only give the parameter order")
    ap.add_argument("--write-state", action="store_true", help="also write state.safetensors (Swift training state)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    dev = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True

    state = load_tensors(args.state)
    _, smeta = read_header(args.state)
    snap = load_tensors(args.snapshot)
    _, meta = read_header(args.snapshot)
    cfg = json.loads(smeta["config"])
    images_seen, step, adam_step = int(smeta["images_seen"]), int(smeta["step"]), int(smeta["adam_step"])
    order = registration_order(state["ema"], snap)

    def unflat(v: np.ndarray) -> dict[str, torch.Tensor]:
        return {n: torch.from_numpy(v[o : o + int(np.prod(s))].reshape(s).copy()) for n, o, s in order}

    def flat(d: dict[str, torch.Tensor]) -> np.ndarray:
        return np.concatenate([d[n].detach().float().cpu().numpy().reshape(-1) for n, _, _ in order])

    model = nn_reference.build(meta["arch"], json.loads(meta["config"])).to(dev)
    if args.restart_from:
        snap = load_tensors(args.restart_from)
        _, meta = read_header(args.restart_from)
        state = {"params": np.concatenate([snap[n].reshape(-1) for n, _, _ in order])}
        state["ema"] = state["params"].copy()
        state["adam.m"] = np.zeros_like(state["params"])
        state["adam.v"] = np.zeros_like(state["params"])
        images_seen = int(json.loads(meta["provenance"])["images_seen"])
        step, adam_step = int(json.loads(meta["provenance"])["steps"]), 0
    restart_at = images_seen if args.restart_from else 0
    model.load_state_dict({k: v.to(dev) for k, v in unflat(state["params"]).items()}, strict=True)
    model.train()
    params = dict(model.named_parameters())
    ema = {k: v.to(dev) for k, v in unflat(state["ema"]).items()}
    lr = float(cfg["learning_rate"])
    opt = torch.optim.Adam([params[n] for n, _, _ in order], lr=lr, betas=(0.9, 0.999), eps=1e-8,
                           fused=dev.type == "cuda")
    m, v = unflat(state["adam.m"]), unflat(state["adam.v"])
    for n, _, _ in order:
        p = params[n]
        opt.state[p] = {"step": torch.tensor(float(adam_step), device=dev if dev.type == "cuda" else "cpu"), "exp_avg": m[n].to(dev), "exp_avg_sq": v[n].to(dev)}

    data = torch.from_numpy(read_idx_images(args.data).copy()).to(dev)
    B = int(cfg["batch_size"])
    sd = float(meta.get("sigma_data", 0.5))
    p_mean, p_std = float(cfg["p_mean"]), float(cfg["p_std"])
    clip = float(cfg["grad_clip"])
    half_life = float(cfg["ema_half_life_images"])
    warmup = float(cfg.get("warmup_images", 10000))
    gen = torch.Generator(device=dev).manual_seed(args.seed * 1_000_003 + step)
    milestones = sorted(int(x) for x in args.milestones.split(",") if x)
    logf = open(os.path.join(args.out, "log.jsonl"), "a")
    provenance = json.loads(meta.get("provenance", "{}"))
    start_images = images_seen

    def save_snapshot(path: str) -> None:
        from safetensors.torch import save_file

        prov = dict(provenance)
        prov.update({"images_seen": str(images_seen), "steps": str(step),
                     "continued_by": f"tools/gpu_teacher.py on {torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'}"
                                     f" from {start_images} images (Swift run)"})
        if args.restart_from:
            prov["continued_by"] = provenance.get("continued_by", "") + (
                f"; restarted from its EMA at {start_images} images with fresh Adam moments (state lost)")
        md = dict(meta)
        md["provenance"] = json.dumps(prov, sort_keys=True)
        save_file({n: ema[n].detach().float().cpu().contiguous() for n, _, _ in order}, path, metadata=md)

    def save_state(path: str) -> None:
        from safetensors.numpy import save_file

        st = {"params": flat(params), "ema": flat(ema),
              "adam.m": flat({n: opt.state[params[n]]["exp_avg"] for n, _, _ in order}),
              "adam.v": flat({n: opt.state[params[n]]["exp_avg_sq"] for n, _, _ in order})}
        md = dict(smeta)
        md.update({"step": str(step), "images_seen": str(images_seen), "adam_step": str(step_adam())})
        save_file(st, path, metadata=md)

    def step_adam() -> int:
        return int(opt.state[params[order[0][0]]]["step"].item())

    perm = torch.randperm(data.shape[0], generator=gen, device=dev)
    cursor = 0
    t0 = time.time()
    t_log, n_log, loss_acc = t0, 0, torch.zeros((), device=dev)
    print(f"start: {images_seen} images, step {step}, adam step {adam_step}, {data.shape[0]} training images, device {dev}", flush=True)
    while True:
        if cursor + B > data.shape[0]:
            perm = torch.randperm(data.shape[0], generator=gen, device=dev)
            cursor = 0
        x0 = data[perm[cursor : cursor + B]].float() / 255 * 2 - 1
        cursor += B
        sigma = torch.exp(p_mean + p_std * torch.randn(B, generator=gen, device=dev)).view(B, 1, 1, 1)
        x = x0 + sigma * torch.randn(x0.shape, generator=gen, device=dev)
        r2 = sigma**2 + sd**2
        c_skip, c_out, c_in = sd**2 / r2, sigma * sd / r2.sqrt(), 1 / r2.sqrt()
        d = c_skip * x + c_out * model(c_in * x, (sigma.log() / 4).view(B))
        w = r2 / (sigma * sd) ** 2
        loss = (w * (d - x0) ** 2).mean()
        opt.zero_grad(set_to_none=False)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (images_seen - restart_at + B) / max(1.0, warmup))
        opt.step()
        step += 1
        images_seen += B
        h = min(half_life, images_seen * 0.05)
        beta = 0.5 ** (B / h) if h > 0 else 0.0
        with torch.no_grad():
            torch._foreach_lerp_(list(ema.values()), [params[n].detach() for n in ema], 1 - beta)
        loss_acc += loss.detach()
        n_log += 1
        elapsed = time.time() - t0
        done = elapsed >= args.seconds or (args.images and images_seen >= args.images)
        if n_log == 500 or done:
            now = time.time()
            rec = {"step": step, "images_seen": images_seen, "loss": float(loss_acc) / n_log, "grad_norm": float(gnorm),
                   "images_per_s": n_log * B / (now - t_log), "elapsed_s": round(elapsed, 1)}
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
            print(json.dumps(rec), flush=True)
            t_log, n_log, loss_acc = now, 0, torch.zeros((), device=dev)
        while milestones and images_seen >= milestones[0]:
            save_snapshot(os.path.join(args.out, f"snapshot-{milestones[0]:09d}.safetensors"))
            print(f"snapshot at {images_seen} images", flush=True)
            milestones.pop(0)
        if done:
            break
    save_snapshot(os.path.join(args.out, f"snapshot-{images_seen:09d}.safetensors"))
    if args.write_state:
        save_state(os.path.join(args.out, "state.safetensors"))
    print(f"end: {images_seen} images, step {step}, {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
