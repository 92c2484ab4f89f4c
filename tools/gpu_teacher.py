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

Class-conditional runs (`class_conditional` in the state's config) train with the data set's labels,
each replaced by the null label -1 with probability `label_dropout`, as `TeacherTrainer` does.

The data stream differs from the Swift run (torch's RNG instead of Philox), so the continuation is
the same recipe, not the same bits. `--verify-swift-run RUN` instead replays a tiny Swift run (one
started with `--init-from`, so its first weights are known) on its own Philox inputs through the
same `TeacherStep` that trains, and compares parameters, Adam moments and EMA with its state.

    python tools/gpu_teacher.py --state runs/mnist-teacher/state.safetensors \
        --snapshot runs/mnist-teacher/snapshots/latest.safetensors --data train-images-idx3-ubyte.gz \
        --out OUT --seconds 420 --milestones 1000000,2000000,4000000
    python tools/gpu_teacher.py --verify-swift-run RUN --threads 1
"""

from __future__ import annotations

import argparse
import gzip
import json
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


def read_idx(path: str, magic: int) -> tuple[list[int], bytes, int]:
    """An IDX file (optionally .gz): (dimensions, raw bytes, offset of the data)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if int.from_bytes(raw[0:4], "big") != magic:
        raise SystemExit(f"{path}: not an IDX file of magic {magic:#x}")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(magic & 0xFF)]
    return dims, raw, 4 + 4 * len(dims)


def read_idx_images(path: str) -> np.ndarray:
    (n, h, w), raw, off = read_idx(path, 0x803)
    return np.frombuffer(raw, dtype=np.uint8, offset=off).reshape(n, 1, h, w)


def read_idx_labels(path: str) -> np.ndarray:
    (n,), raw, off = read_idx(path, 0x801)
    return np.frombuffer(raw, dtype=np.uint8, offset=off, count=n)


def find_train_file(data: str, name: str, stem: str = "train-images-idx3-ubyte") -> str:
    """`--data` as Swift's --data-dir (DIR/<name>/<stem>[.gz]), a folder holding the file, or (for
    the images) the IDX file itself."""
    if os.path.isfile(data) and stem.startswith("train-images"):
        return data
    if os.path.isfile(data):
        data = os.path.dirname(data) or "."
    for d in (os.path.join(data, name), data):
        for f in (stem, stem + ".gz"):
            if os.path.isfile(os.path.join(d, f)):
                return os.path.join(d, f)
    raise SystemExit(f"no {name} {stem}[.gz] under {data}")


def clip_grad_(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """GradientClip.clip: global L2 norm; scaled by max_norm / norm only when norm > max_norm."""
    grads = [p.grad for p in params]
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    scale = torch.where(norm > max_norm, max_norm / norm, torch.ones_like(norm))
    torch._foreach_mul_(grads, scale)
    return norm


class Philox:
    """Philox4x32-10 stream as Sources/TensorCore/Philox.swift (key = seed, counter words 2,3 =
    stream), with its Box-Muller normals (Double uniforms ((u >> 8) + 0.5) 2^-24, cos then sin,
    the second kept as a spare), Float uniforms ((u >> 9) + 0.5) 2^-23, nextInt(below:) and
    Fisher-Yates shuffle. numpy; for checks only."""

    def __init__(self, seed: int, stream: int):
        self.seed, self.stream, self.buf, self.block, self.spare = seed, stream, np.zeros(0, np.uint64), 0, None

    @staticmethod
    def rounds(c: list[np.ndarray], k0: int, k1: int) -> list[np.ndarray]:
        m0, m1, mask = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57), np.uint64(0xFFFFFFFF)
        c0, c1, c2, c3 = c
        for r in range(10):
            if r:
                k0, k1 = (k0 + 0x9E3779B9) & 0xFFFFFFFF, (k1 + 0xBB67AE85) & 0xFFFFFFFF
            p0, p1 = m0 * c0, m1 * c2
            c0, c1, c2, c3 = (p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0), p1 & mask, (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1), p0 & mask
        return [c0, c1, c2, c3]

    def words(self, n: int) -> np.ndarray:
        while self.buf.size < n:
            nb = max(1024, (n - self.buf.size + 3) // 4)
            i = np.arange(self.block, self.block + nb, dtype=np.uint64)
            c = [i & np.uint64(0xFFFFFFFF), i >> np.uint64(32), np.full(nb, self.stream & 0xFFFFFFFF, np.uint64),
                 np.full(nb, self.stream >> 32, np.uint64)]
            self.buf = np.concatenate([self.buf, np.stack(self.rounds(c, self.seed & 0xFFFFFFFF, self.seed >> 32), 1).reshape(-1)])
            self.block += nb
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _pairs(self, n: int) -> np.ndarray:
        u = (np.floor(self.words(2 * n).astype(np.float64) / 256) + 0.5) * 2.0 ** -24
        r, t = np.sqrt(-2.0 * np.log(u[0::2])), 2.0 * np.pi * u[1::2]
        out = np.empty(2 * n, np.float32)
        out[0::2], out[1::2] = r * np.cos(t), r * np.sin(t)
        return out

    def normal(self) -> np.float32:
        if self.spare is not None:
            v, self.spare = self.spare, None
            return v
        a, self.spare = self._pairs(1)
        return a

    def fill_normal(self, n: int) -> np.ndarray:
        head = [self.spare] if n and self.spare is not None else []
        self.spare = None
        m = n - len(head)
        out = np.concatenate([np.array(head, np.float32), self._pairs(m // 2)])
        return np.append(out, self.normal()) if m % 2 else out

    def uniforms(self, n: int) -> np.ndarray:
        """n of nextUniform(): Float ((u >> 9) + 0.5) 2^-23 (exact in float32)."""
        return ((self.words(n) >> np.uint64(9)).astype(np.float32) + np.float32(0.5)) * np.float32(2.0 ** -23)

    def next_int(self, n: int) -> int:
        limit = (1 << 32) - ((1 << 32) % n)
        while True:
            x = int(self.words(1)[0])
            if x < limit:
                return x % n

    def shuffled(self, count: int) -> np.ndarray:
        idx = list(range(count))
        for i in range(count - 1, 0, -1):
            j = self.next_int(i + 1)
            idx[i], idx[j] = idx[j], idx[i]
        return np.array(idx)


# Philox stream tags of TeacherTrainer: EDMLoss.streamTag ("EDML") and labelDropoutTag ("LDRP").
EDML_TAG, LDRP_TAG = 0x4544_4D4C_0000_0000, 0x4C44_5250_0000_0000


def flat_vector(d: dict[str, torch.Tensor], names: list[str]) -> np.ndarray:
    """The tensors named `names`, in that order, as one float32 vector (a Swift state's layout)."""
    return np.concatenate([d[n].detach().float().cpu().numpy().reshape(-1) for n in names])


class TeacherStep:
    """One step of TeacherTrainer on nn_reference's network: x = x0 + sigma n, D = c_skip x +
    c_out F(c_in x, c_noise, labels) (coefficients in double, rounded once, as EDMCoefficients),
    loss = mean over samples and elements of lambda(sigma) (D - x0)^2, global-norm clipping, Adam
    (beta1 0.9) at the learning rate ramped over the warm-up, EMA with beta = 0.5^(B / min(half-life,
    0.05 images)). The random inputs are arguments: the training loop draws them with torch's
    generator, the check with Philox, so the check tests the code that trains."""

    def __init__(self, model: torch.nn.Module, names: list[str], cfg: dict, sigma_data: float, *,
                 images_seen: int, step: int, restart_at: int = 0):
        self.model, self.names, self.sd = model, names, float(sigma_data)
        self.params = dict(model.named_parameters())
        self.plist = [self.params[n] for n in names]
        self.lr, self.warmup = float(cfg["learning_rate"]), float(cfg.get("warmup_images", 10000))
        self.clip, self.half_life = float(cfg["grad_clip"]), float(cfg["ema_half_life_images"])
        self.images_seen, self.step, self.restart_at = images_seen, step, restart_at
        dev = self.plist[0].device
        self.opt = torch.optim.Adam(self.plist, lr=self.lr, betas=(0.9, 0.999), eps=1e-8, fused=dev.type == "cuda")
        self.ema = {n: self.params[n].detach().clone() for n in names}

    def load_adam(self, m: dict[str, torch.Tensor], v: dict[str, torch.Tensor], adam_step: int) -> None:
        dev = self.plist[0].device
        for n in self.names:
            self.opt.state[self.params[n]] = {
                "step": torch.tensor(float(adam_step), device=dev if dev.type == "cuda" else "cpu"),
                "exp_avg": m[n].to(dev), "exp_avg_sq": v[n].to(dev)}

    def state_vectors(self) -> dict[str, np.ndarray]:
        """Parameters, EMA and Adam moments as the flat vectors of a Swift training state."""
        moment = lambda key: {n: self.opt.state[self.params[n]][key] for n in self.names}  # noqa: E731
        return {"params": flat_vector(self.params, self.names), "ema": flat_vector(self.ema, self.names),
                "adam.m": flat_vector(moment("exp_avg"), self.names),
                "adam.v": flat_vector(moment("exp_avg_sq"), self.names)}

    def adam_step(self) -> int:
        st = self.opt.state.get(self.plist[0])
        return int(st["step"].item()) if st else 0

    def __call__(self, x0: torch.Tensor, labels: torch.Tensor | None, sigma: torch.Tensor,
                 noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B = x0.shape[0]
        view = (B,) + (1,) * (x0.dim() - 1)
        s, sd = sigma.double(), self.sd
        r2 = s * s + sd * sd
        c_skip, c_out, c_in = (sd * sd / r2).float(), (s * sd / r2.sqrt()).float(), (1 / r2.sqrt()).float()
        c_noise, w = (s.log() / 4).float(), (r2 / (s * sd) ** 2).float()
        x = x0 + sigma.view(view) * noise
        d = c_skip.view(view) * x + c_out.view(view) * self.model(c_in.view(view) * x, c_noise, labels)
        loss = (w.view(view) * (d - x0) ** 2).mean()
        self.opt.zero_grad(set_to_none=False)
        loss.backward()
        gnorm = clip_grad_(self.plist, self.clip)
        for g in self.opt.param_groups:
            g["lr"] = self.lr * min(1.0, (self.images_seen - self.restart_at + B) / max(1.0, self.warmup))
        self.opt.step()
        self.step += 1
        self.images_seen += B
        h = min(self.half_life, self.images_seen * 0.05)
        beta = 0.5 ** (B / h) if h > 0 else 0.0
        with torch.no_grad():
            ema = [self.ema[n] for n in self.names]
            torch._foreach_mul_(ema, beta)
            torch._foreach_add_(ema, [p.detach() for p in self.plist], alpha=1 - beta)
        return loss.detach(), gnorm


def verify_swift_run(run: str) -> float:
    """Replays a (tiny) Swift `onestep train teacher --init-from S` run on its exact inputs (Batcher
    order, the Philox streams EDML | step and LDRP | step, EDMLoss's draw order: B normals for ln
    sigma, then the noise) with TeacherStep on the CPU, from S's weights, and compares parameters,
    Adam moments and EMA with its state.safetensors; returns the largest relative L2 difference.
    Example (from the repository root; a few seconds):
        onestep train teacher --data mnist --class-conditional --label-dropout 0.5 \
            --init-from models/serve/mnist-teacher-cond/3/model.safetensors --batch 8 --images 24 \
            --grid 4 --steps 2 --threads 1 --seed 3 --out R
        python tools/gpu_teacher.py --verify-swift-run R --threads 1"""
    from safetensors.numpy import load_file

    cfg = json.load(open(os.path.join(run, "config.json")))
    if cfg.get("arch") != "unet" or not cfg.get("init_from"):
        raise SystemExit("--verify-swift-run needs a U-Net run started with --init-from (its first weights)")
    st = load_file(os.path.join(run, "state.safetensors"))
    _, smeta = read_header(os.path.join(run, "state.safetensors"))
    snap_path = os.path.join(run, "snapshots", "latest.safetensors")
    snap = load_file(snap_path)
    _, meta = read_header(snap_path)
    steps, seed, B = int(smeta["step"]), int(cfg["seed"]), int(cfg["batch_size"])
    order = registration_order(st["ema"], snap)
    names = [n for n, _, _ in order]
    model = nn_reference.build(meta["arch"], json.loads(meta["config"]))
    start = load_tensors(cfg["init_from"])
    state = model.state_dict()
    for n in state:
        if n in start:
            state[n] = torch.from_numpy(start[n].copy()).float()
        elif n == "map_label.weight" and cfg.get("label_map_init", "zero") == "zero":
            state[n] = torch.zeros_like(state[n])
        else:
            raise SystemExit(f"{n}: not in {cfg['init_from']} and not replayable (label_map_init random?)")
    model.load_state_dict(state, strict=True)
    first = {n: v.detach().clone() for n, v in model.named_parameters()}
    tr = TeacherStep(model, names, cfg, float(meta.get("sigma_data", 0.5)), images_seen=0, step=0)
    data_dir = cfg.get("data_dir", "data")
    imgs = read_idx_images(find_train_file(data_dir, cfg["data"]))
    conditional = bool(cfg.get("class_conditional")) and int(json.loads(meta["config"]).get("num_classes", 0)) > 0
    labs = read_idx_labels(find_train_file(data_dir, cfg["data"], "train-labels-idx1-ubyte")) if conditional else None
    N, D, shape = imgs.shape[0], int(np.prod(imgs.shape[1:])), tuple(imgs.shape[1:])
    table = np.array([np.float32(v) / np.float32(255) * np.float32(2) - np.float32(1) for v in range(256)], np.float32)
    pm, ps, drop = np.float32(cfg["p_mean"]), np.float32(cfg["p_std"]), np.float32(cfg.get("label_dropout", 0))
    T = lambda a, *s: torch.from_numpy(np.ascontiguousarray(np.asarray(a, np.float32).reshape(*s)))  # noqa: E731
    perms: dict[int, np.ndarray] = {}
    dropped = 0
    for s in range(steps):
        e, b = divmod(s, N // B)
        if e not in perms:
            perms[e] = Philox(seed, e).shuffled(N)
        idx = perms[e][b * B : (b + 1) * B]
        labels = None
        if conditional:
            lab = labs[idx].astype(np.int64)
            if drop > 0:
                gone = Philox(seed, LDRP_TAG | s).uniforms(B) < drop
                lab[gone] = -1
                dropped += int(gone.sum())
            labels = torch.from_numpy(lab)
        r = Philox(seed, EDML_TAG | s)
        sig = [np.float32(np.exp(np.float64(pm + ps * r.normal()))) for _ in range(B)]
        loss, norm = tr(T(table[imgs[idx]], B, *shape), labels, T(sig, B), T(r.fill_normal(B * D), B, *shape))
        print(f"step {s + 1}: loss {float(loss):.7f} grad_norm {float(norm):.7g}")
    if conditional:
        print(f"labels: {steps * B} drawn, {dropped} dropped to the null label (label_dropout {float(drop)})")
    ours = tr.state_vectors()
    worst = compare_with_state(ours, st, run, '"loss"')
    # A tiny run sits deep in the learning-rate warm-up and the EMA's ramp-up: the weights move by
    # about 1e-5 of their size, so the comparisons above hardly see the learning rate or the EMA
    # factor. Compare the moves themselves too (float32 rounding of the weights is about 1e-3 of a
    # move; a warm-up or EMA formula off by one step is 0.1 or more).
    start = flat_vector(first, names)
    moves = {"params - start": (ours["params"] - start, st["params"] - start),
             "ema - start": (ours["ema"] - start, st["ema"] - start)}
    for name, (a, b) in moves.items():
        rel = float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))
        worst = max(worst, rel / MOVE_TOLERANCE_FACTOR)
        print(f"{name} relative L2 {rel:.3g} (limit {1e-4 * MOVE_TOLERANCE_FACTOR:.0e})")
    return worst


# The moves of a tiny run are compared with a limit this many times the weights' 1e-4.
MOVE_TOLERANCE_FACTOR = 100


def compare_with_state(ours: dict[str, np.ndarray], swift: dict[str, np.ndarray], run: str, log_key: str) -> float:
    """Prints, per state tensor, how far the replay is from the Swift run's, and the run's log lines
    holding `log_key`; returns the largest relative L2 difference."""
    worst, width = 0.0, max(len(n) for n in ours)
    for name, a in ours.items():
        b = swift[name]
        rel = float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))
        worst = max(worst, rel)
        print(f"{name:{width}s} max|torch - swift| {np.abs(a - b).max():.3g}  max|swift| {np.abs(b).max():.3g}  relative L2 {rel:.3g}")
    print("Swift log:", *[ln.strip() for ln in open(os.path.join(run, "log.jsonl")) if log_key in ln], sep="\n  ")
    return worst


def exit_with_verdict(worst: float) -> None:
    """The verdict line `TorchReplayTests` reads, and the exit status (1 past 1e-4)."""
    print(f"largest relative L2 difference {worst:.3g}: {'OK' if worst < 1e-4 else 'MISMATCH'}")
    sys.exit(0 if worst < 1e-4 else 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--state")
    ap.add_argument("--snapshot", help="the EMA snapshot written with --state (names and metadata)")
    ap.add_argument("--data", help="train images, IDX (optionally .gz), or a data folder as Swift's --data-dir; "
                                   "a conditional run also reads train-labels-idx1-ubyte beside the images")
    ap.add_argument("--out")
    ap.add_argument("--seconds", type=float, default=420)
    ap.add_argument("--images", type=int, default=0, help="stop at this many images seen (0: time only)")
    ap.add_argument("--milestones", default="", help="images-seen values at which to write an EMA snapshot")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--restart-from", default="",
                    help="an EMA snapshot of the same run to start from, with fresh Adam moments and lr warm-up (when its state was lost); "
                         "--state/--snapshot then only give the parameter order")
    ap.add_argument("--write-state", action="store_true", help="also write state.safetensors (Swift training state)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    ap.add_argument("--verify-swift-run", default="", metavar="RUN",
                    help="instead of training: replay a tiny Swift teacher run on its Philox inputs and compare with its state")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.verify_swift_run:
        exit_with_verdict(verify_swift_run(args.verify_swift_run))
    if not (args.state and args.snapshot and args.data and args.out):
        ap.error("--state, --snapshot, --data and --out are required")
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
    names = [n for n, _, _ in order]

    def unflat(v: np.ndarray) -> dict[str, torch.Tensor]:
        return {n: torch.from_numpy(v[o : o + int(np.prod(s))].reshape(s).copy()) for n, o, s in order}

    model = nn_reference.build(meta["arch"], json.loads(meta["config"])).to(dev)
    if args.restart_from:
        snap = load_tensors(args.restart_from)
        _, meta = read_header(args.restart_from)
        state = {"params": np.concatenate([snap[n].reshape(-1) for n in names])}
        state["ema"] = state["params"].copy()
        state["adam.m"] = np.zeros_like(state["params"])
        state["adam.v"] = np.zeros_like(state["params"])
        images_seen = int(json.loads(meta["provenance"])["images_seen"])
        step, adam_step = int(json.loads(meta["provenance"])["steps"]), 0
    restart_at = images_seen if args.restart_from else 0
    model.load_state_dict({k: v.to(dev) for k, v in unflat(state["params"]).items()}, strict=True)
    model.train()
    tr = TeacherStep(model, names, cfg, float(meta.get("sigma_data", 0.5)), images_seen=images_seen, step=step,
                     restart_at=restart_at)
    tr.ema = {k: v.to(dev) for k, v in unflat(state["ema"]).items()}
    tr.load_adam(unflat(state["adam.m"]), unflat(state["adam.v"]), adam_step)

    data_name = cfg.get("data", "mnist")
    data = torch.from_numpy(read_idx_images(find_train_file(args.data, data_name)).copy()).to(dev)
    num_classes = int(json.loads(meta["config"]).get("num_classes", 0))
    conditional = bool(cfg.get("class_conditional")) and num_classes > 0
    labels_all = None
    if conditional:
        labels_all = torch.from_numpy(
            read_idx_labels(find_train_file(args.data, data_name, "train-labels-idx1-ubyte")).astype(np.int64)).to(dev)
        if labels_all.shape[0] != data.shape[0]:
            raise SystemExit(f"{labels_all.shape[0]} labels for {data.shape[0]} images")
    label_dropout = float(cfg.get("label_dropout", 0))
    B = int(cfg["batch_size"])
    p_mean, p_std = float(cfg["p_mean"]), float(cfg["p_std"])
    gen = torch.Generator(device=dev).manual_seed(args.seed * 1_000_003 + step)
    milestones = sorted(int(x) for x in args.milestones.split(",") if x)
    logf = open(os.path.join(args.out, "log.jsonl"), "a")
    provenance = json.loads(meta.get("provenance", "{}"))
    start_images = images_seen

    def save_snapshot(path: str) -> None:
        from safetensors.torch import save_file

        prov = dict(provenance)
        prov.update({"images_seen": str(tr.images_seen), "steps": str(tr.step),
                     "continued_by": f"tools/gpu_teacher.py on {torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'}"
                                     f" from {start_images} images (Swift run)"})
        if args.restart_from:
            prov["continued_by"] = provenance.get("continued_by", "") + (
                f"; restarted from its EMA at {start_images} images with fresh Adam moments (state lost)")
        md = dict(meta)
        md["provenance"] = json.dumps(prov, sort_keys=True)
        save_file({n: tr.ema[n].detach().float().cpu().contiguous() for n in names}, path, metadata=md)

    def save_state(path: str) -> None:
        from safetensors.numpy import save_file

        md = dict(smeta)
        md.update({"step": str(tr.step), "images_seen": str(tr.images_seen), "adam_step": str(tr.adam_step())})
        save_file(tr.state_vectors(), path, metadata=md)

    perm = torch.randperm(data.shape[0], generator=gen, device=dev)
    cursor = 0
    t0 = time.time()
    t_log, n_log, loss_acc = t0, 0, torch.zeros((), device=dev)
    print(f"start: {images_seen} images, step {step}, adam step {adam_step}, {data.shape[0]} training images"
          f"{f', {num_classes} classes, label dropout {label_dropout}' if conditional else ''}, device {dev}", flush=True)
    while True:
        if cursor + B > data.shape[0]:
            perm = torch.randperm(data.shape[0], generator=gen, device=dev)
            cursor = 0
        idx = perm[cursor : cursor + B]
        x0 = data[idx].float() / 255 * 2 - 1
        labels = None
        if conditional:
            labels = labels_all[idx].clone()
            if label_dropout > 0:
                labels[torch.rand(B, generator=gen, device=dev) < label_dropout] = -1
        cursor += B
        sigma = torch.exp(p_mean + p_std * torch.randn(B, generator=gen, device=dev))
        loss, gnorm = tr(x0, labels, sigma, torch.randn(x0.shape, generator=gen, device=dev))
        loss_acc += loss
        n_log += 1
        elapsed = time.time() - t0
        done = elapsed >= args.seconds or (args.images and tr.images_seen >= args.images)
        if n_log == 500 or done:
            now = time.time()
            rec = {"step": tr.step, "images_seen": tr.images_seen, "loss": float(loss_acc) / n_log,
                   "grad_norm": float(gnorm), "images_per_s": n_log * B / (now - t_log), "elapsed_s": round(elapsed, 1)}
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
            print(json.dumps(rec), flush=True)
            t_log, n_log, loss_acc = now, 0, torch.zeros((), device=dev)
        while milestones and tr.images_seen >= milestones[0]:
            save_snapshot(os.path.join(args.out, f"snapshot-{milestones[0]:09d}.safetensors"))
            print(f"snapshot at {tr.images_seen} images", flush=True)
            milestones.pop(0)
        if done:
            break
    save_snapshot(os.path.join(args.out, f"snapshot-{tr.images_seen:09d}.safetensors"))
    if args.write_state:
        save_state(os.path.join(args.out, "state.safetensors"))
    print(f"end: {tr.images_seen} images, step {tr.step}, {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
