"""One-step DiJS distillation (`onestep distill --method dijs --init teacher`) on a GPU, with the
PyTorch reference of the same networks and the same recipe.

The Swift trainer (`OneStepTrainer`) is the product; this tool runs its recipe where a GPU is lent:

- generator g(z) = D(sigma_init z, sigma_init), D the EDM-preconditioned teacher U-Net
  (`nn_reference.UNet`), started from the teacher's weights (arm T);
- ratio classifier c(x, sigma) = `RatioClassifierUNet` below (Sources/NN/RatioClassifierUNet.swift):
  the teacher's encoder half (embedding, `enc.*`, `mid.block0`, copied from the teacher by name)
  plus a head GroupNorm + SiLU, global average pool, zero-initialised Linear to one logit; input
  c_in(sigma) x, noise embedding ln(sigma) / 4;
- per generator step, K classifier steps (fresh real batch, fresh detached generated batch): BCE
  mean softplus(-c(x0 + s n, s)) + mean softplus(c(g + s' n', s')), ln s ~ N(p_mean, p_std^2),
  then one generator step L = -mean softplus(c(g(z) + s n, s)) / 2 (DiJS), the gradient reaching
  the generator only through the classifier's input;
- global-norm clipping of each network's gradient, Adam (beta1 0.5, beta2 0.999, eps 1e-8, constant
  learning rates), EMA of the generator with half-life in images and ramp-up 0.05 (Swift's `EMA`);

and writes

- generator snapshots `snapshot-<images>.safetensors` in the Swift format (kind `generator`, EMA
  weights, the current classifier as part `classifier`, provenance with `trained_by`), which
  `onestep eval/sample/serve` and best-of-K load unchanged;
- `config.json` (the recipe, Swift's `OneStepConfig` keys) and `log.jsonl` (step, images_seen,
  loss_c, c_real, c_fake, acc_c, loss_g, grad_norm_g, images_per_s, elapsed_s).

A class-conditional teacher makes a conditional run: generated batches for uniform labels (drawn
after the noise), the classifier conditioned on the real images' labels and the generated ones'.
`--p-mean-after IMAGES:P_MEAN` moves the noise levels of both losses part-way, after that point's
snapshot (the Swift runs' `--resume --set p_mean=0`, which changes the one `RatioNoiseLevels` both
steps share).

Randomness comes from torch's generator instead of Philox: the same recipe, not the same bits.
`--verify-swift-run RUN` instead replays a tiny Swift run on its own Philox inputs through the same
`DiJSTrainer` steps and compares parameters, Adam moments and EMA with its state (see there).
Defaults are the recipe of runs/mnist-dijs-T (batch 64, both learning rates 2e-4, K 2, beta1 0.5,
clip 1, EMA half-life 10,000 images, sigma_init 2.5), not the Swift CLI's defaults (batch 256,
lr-c 2e-3).

    python3 tools/gpu_distill.py --teacher models/serve/mnist-teacher/2/model.safetensors --data data \\
        --out OUT --seconds 480 --milestones 100000,200000,300000,400000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nn_reference  # noqa: E402
from gpu_teacher import (  # noqa: E402  (the same readers, Philox and clipping as the teacher tool)
    Philox, clip_grad_, exit_with_verdict, find_train_file, read_header, read_idx_images, read_idx_labels)


# ------------------------------------------------------------------------------------ networks

class RatioClassifierUNet(nn_reference.EmbeddingMixin, nn.Module):
    """Sources/NN/RatioClassifierUNet.swift: the U-Net's encoder half under the U-Net's parameter
    names (`map_layer0/1`, `enc.conv_in`, `enc.L.blockI`, `enc.L.down`, `mid.block0`) and the head
    `head.norm` (GroupNorm, weight 1, bias 0) + SiLU, mean over H, W, `head.out` (Linear C -> 1,
    zero weight and bias). forward(x [B, C, H, W], sigma [B]) -> logits [B]."""

    arch = "ratio-unet"

    def __init__(self, unet_config: dict, sigma_data: float = 0.5):
        nn.Module.__init__(self)
        cfg = dict(nn_reference.UNET_DEFAULTS)
        cfg.update(unet_config)
        cfg["channels"] = [int(c) for c in cfg["channels"]]
        self.config = cfg
        self.sigma_data = float(sigma_data)
        ch, L, nb, E = cfg["channels"], len(cfg["channels"]), cfg["blocks_per_level"], cfg["emb_channels"]
        self._make_embedding(cfg["noise_channels"], E, cfg["num_classes"])
        # The same construction as nn_reference.UNet's encoder (and Swift's UNetEncoder).
        self.enc = nn.Module()
        self.enc.conv_in = nn.Conv2d(cfg["in_channels"], ch[0], 3, stride=1, padding=1)
        for l in range(L):
            lv = nn_reference._Level()
            for i in range(nb):
                cin = (ch[l - 1] if l > 0 else ch[0]) if i == 0 else ch[l]
                lv.add_module(f"block{i}", nn_reference.ResBlock(cin, ch[l], E))
            if l < L - 1:
                lv.down = nn.Conv2d(ch[l], ch[l], 3, stride=2, padding=1)
            self.enc.add_module(str(l), lv)
        self.mid = nn.Module()
        self.mid.block0 = nn_reference.ResBlock(ch[L - 1], ch[L - 1], E)
        self.head = nn.Module()
        self.head.norm = nn_reference.group_norm(ch[L - 1])
        self.head.out = nn.Linear(ch[L - 1], 1)
        nn.init.zeros_(self.head.out.weight)
        nn.init.zeros_(self.head.out.bias)

    def config_json(self) -> str:
        """`classifier_config` as Swift writes it (RatioClassifierUNetConfig, sorted keys)."""
        return json.dumps({"sigma_data": self.sigma_data, "unet": self.config}, sort_keys=True, separators=(",", ":"))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        # ClassifierPreconditioning: c_in = 1/sqrt(s^2 + sd^2), c_noise = ln(s)/4, in double, rounded once.
        s = sigma.double()
        c_in = (1 / (s * s + self.sigma_data ** 2).sqrt()).float()
        c_noise = (s.log() / 4).float()
        cfg = self.config
        L, nb = len(cfg["channels"]), cfg["blocks_per_level"]
        e = self.embed(c_noise, labels)
        h = self.enc.conv_in(c_in.view(-1, 1, 1, 1) * x)
        for l in range(L):
            lv = getattr(self.enc, str(l))
            for i in range(nb):
                h = getattr(lv, f"block{i}")(h, e)
            if l < L - 1:
                h = lv.down(h)
        h = self.mid.block0(h, e)
        a = nn_reference.silu(self.head.norm(h))
        return self.head.out(a.mean(dim=(2, 3))).view(-1)


def edm_coefficients(sigma: float, sigma_data: float) -> tuple[float, float, float, float]:
    """EDMCoefficients (Sources/Diffusion/Precond.swift): Double, rounded once to Float."""
    s, sd = float(np.float32(sigma)), float(sigma_data)
    r = math.sqrt(s * s + sd * sd)
    f = lambda v: float(np.float32(v))  # noqa: E731
    return f(sd * sd / (s * s + sd * sd)), f(s * sd / r), f(1 / r), f(math.log(s) / 4)


class OneStepGenerator(nn.Module):
    """g(z) = D(sigma_init z, sigma_init) = c_skip x + c_out F(c_in x, c_noise), x = sigma_init z
    (OneStepTrainer.drawGenerated + EDMDenoiser.forward, float32 with Float coefficients)."""

    def __init__(self, net: nn.Module, sigma_init: float, sigma_data: float):
        super().__init__()
        self.net = net
        self.sigma_init = float(np.float32(sigma_init))
        self.c_skip, self.c_out, self.c_in, self.c_noise = edm_coefficients(sigma_init, sigma_data)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = self.sigma_init * z
        cn = torch.full((z.shape[0],), self.c_noise, dtype=z.dtype, device=z.device)
        return self.c_skip * x + self.c_out * self.net(self.c_in * x, cn, labels)


# ------------------------------------------------------------------------------------ files

def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_teacher(path: str) -> tuple[dict, dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    _, meta = read_header(path)
    if meta.get("format") != nn_reference.FORMAT or meta.get("arch") != "unet":
        raise SystemExit(f"{path}: not a OneStep U-Net snapshot (format {meta.get('format')}, arch {meta.get('arch')})")
    return meta, {k: v.float() for k, v in load_file(path).items()}


def load_generator_snapshot(path: str, device: str = "cpu") -> tuple[OneStepGenerator, RatioClassifierUNet | None, dict]:
    """A Swift (or this tool's) generator snapshot as (generator, classifier or None, metadata)."""
    from safetensors.torch import load_file

    _, meta = read_header(path)
    if meta.get("kind") != "generator":
        raise SystemExit(f"{path}: kind {meta.get('kind')}, expected generator")
    t = load_file(path)
    net = nn_reference.UNet(json.loads(meta["config"]))
    net.load_state_dict({k: v.float() for k, v in t.items() if not k.startswith("classifier.")}, strict=True)
    gen = OneStepGenerator(net, float(meta["sigma_init"]), float(meta["sigma_data"])).to(device)
    cls = None
    if meta.get("classifier_arch") == RatioClassifierUNet.arch:
        cc = json.loads(meta["classifier_config"])
        cls = RatioClassifierUNet(cc["unet"], cc.get("sigma_data", 0.5))
        cls.load_state_dict({k[len("classifier."):]: v.float() for k, v in t.items() if k.startswith("classifier.")}, strict=True)
        cls = cls.to(device)
    return gen, cls, meta


# ------------------------------------------------------------------------------------ training

class DiJSTrainer:
    """OneStepTrainer for method dijs, arm T, image teacher: the networks, both Adams, the EMA and
    the two steps. The steps take their random inputs as arguments (the training loop draws them
    with torch's generator; a check can pass Philox's), so this is the code that trains."""

    def __init__(self, teacher: dict[str, torch.Tensor], unet_config: dict, sigma_data: float, *, sigma_init: float,
                 batch: int, k: int, lr_g: float, lr_c: float, beta1: float, grad_clip: float, ema_half_life: float,
                 device: torch.device):
        self.B, self.K, self.grad_clip, self.ema_half_life = batch, k, grad_clip, ema_half_life
        # Arm T: the generator's raw network is the teacher's (InitialisationArms.build(.teacher)).
        net = nn_reference.UNet(unet_config)
        net.load_state_dict(teacher, strict=True)
        self.gen = OneStepGenerator(net, sigma_init, sigma_data).to(device)
        # makeClassifier: RatioClassifierUNet, then initialise(fromTeacher:) = copyMatching by name and shape.
        cls = RatioClassifierUNet(unet_config, sigma_data)
        cstate = cls.state_dict()
        self.copied = 0
        for name in cstate:
            if name in teacher and tuple(teacher[name].shape) == tuple(cstate[name].shape):
                cstate[name] = teacher[name].clone()
                self.copied += teacher[name].numel()
        cls.load_state_dict(cstate, strict=True)
        self.cls = cls.to(device)
        self.gnames = [n for n, _ in net.named_parameters()]
        self.gparams = [p for _, p in self.gen.net.named_parameters()]
        self.cnames = [n for n, _ in self.cls.named_parameters()]
        self.cparams = [p for _, p in self.cls.named_parameters()]
        self.ema = [p.detach().clone() for p in self.gparams]
        fused = device.type == "cuda"
        self.opt_g = torch.optim.Adam(self.gparams, lr=lr_g, betas=(beta1, 0.999), eps=1e-8, fused=fused)
        self.opt_c = torch.optim.Adam(self.cparams, lr=lr_c, betas=(beta1, 0.999), eps=1e-8, fused=fused)
        self.step, self.images_seen = 0, 0

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Detached generated samples from the current (not EMA) weights."""
        return self.gen(z, labels)

    def classifier_step(self, x0: torch.Tensor, fake: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor,
                        real_labels: torch.Tensor | None = None, fake_labels: torch.Tensor | None = None) -> dict:
        """RatioClassifierLoss + clip + Adam: real x0 [B, ...] and detached fake [B, ...] at noise
        levels sigma [2B] (real first) with standard normals noise [2B, ...], one batch of 2B:
        L = mean softplus(-c_real) + mean softplus(c_fake). A conditional classifier sees the real
        images' labels and the labels the fakes were generated for."""
        B = x0.shape[0]
        x = torch.cat([x0, fake]) + sigma.view(-1, 1, 1, 1) * noise
        labels = None if real_labels is None else torch.cat([real_labels, fake_labels])
        c = self.cls(x, sigma, labels)
        cr, cf = c[:B], c[B:]
        loss = F.softplus(-cr).mean() + F.softplus(cf).mean()
        self.opt_c.zero_grad(set_to_none=False)
        loss.backward()
        clip_grad_(self.cparams, self.grad_clip)
        self.opt_c.step()
        with torch.no_grad():
            acc = ((cr > 0).sum() + (cf < 0).sum()).float() / (2 * B)
            return {"loss_c": loss.detach(), "c_real": cr.mean(), "c_fake": cf.mean(), "acc_c": acc}

    def generator_step(self, z: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor,
                       labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """RatioGeneratorLoss for DiJS (h = softplus / 2, w = 1) + clip + Adam: x = g(z, y) + sigma n,
        L = -mean softplus(c(x, sigma, y)) / 2; the classifier is frozen (only the generator's grads
        are computed), the gradient reaches the generator through x. Returns (L, norm before clip)."""
        g = self.gen(z, labels)
        c = self.cls(g + sigma.view(-1, 1, 1, 1) * noise, sigma, labels)
        loss = -(F.softplus(c) / 2).mean()
        self.opt_g.zero_grad(set_to_none=False)
        loss.backward(inputs=self.gparams)
        norm = clip_grad_(self.gparams, self.grad_clip)
        self.opt_g.step()
        return loss.detach(), norm

    @torch.no_grad()
    def end_step(self) -> None:
        """step += 1, images += B, EMA with beta = 0.5^(B / min(half-life, 0.05 images)) (Swift's EMA)."""
        self.step += 1
        self.images_seen += self.B
        h = min(self.ema_half_life, self.images_seen * 0.05)
        beta = 0.5 ** (self.B / h) if h > 0 else 0.0
        torch._foreach_mul_(self.ema, beta)
        torch._foreach_add_(self.ema, [p.detach() for p in self.gparams], alpha=1 - beta)


# ------------------------------------------------------------------------------------ check against Swift

def verify_swift_run(run: str) -> float:
    """Replays a (tiny) Swift `onestep distill --method dijs --init teacher` run on its exact inputs
    (Batcher order, the Philox streams classifierTag | j and generatorTag | s, the draw order of
    OneStepTrainer / RatioClassifierLoss / RatioGeneratorLoss) with DiJSTrainer on the CPU and
    compares parameters, Adam moments and EMA with its state.safetensors; returns the largest
    relative L2 difference. Use a power-of-two batch: the classifier's head starts at zero, so
    its first bias gradient is sum(-1/2B, ..., +1/2B) = 0 up to rounding, which for other batches
    differs in the last bit and Adam's first step turns into +-lr (a rounding effect, not a recipe
    difference). Example (from the repository root; about 5 s):
        onestep distill --teacher T --out R --batch 8 --images 24 --lr-c 2e-4 --grid 4 --threads 1 --seed 3
        python tools/gpu_distill.py --verify-swift-run R --threads 1"""
    from safetensors.numpy import load_file

    import gpu_teacher

    cfg = json.load(open(os.path.join(run, "config.json")))
    if cfg["method"] != "dijs" or cfg["init"] != "teacher" or cfg.get("classifier_warmup_steps", 0):
        raise SystemExit("--verify-swift-run needs a dijs run with --init teacher and no classifier warm-up")
    st = load_file(os.path.join(run, "state.safetensors"))
    _, smeta = read_header(os.path.join(run, "state.safetensors"))
    steps, seed, B, K = int(smeta["step"]), int(cfg["seed"]), int(cfg["batch_size"]), int(cfg["classifier_steps"])
    tmeta, tt = load_teacher(cfg["teacher"])
    imgs = read_idx_images(find_train_file(cfg.get("data_dir", "data"), cfg["data"]))
    C = int(json.loads(tmeta["config"]).get("num_classes", 0))
    labs = read_idx_labels(find_train_file(cfg.get("data_dir", "data"), cfg["data"], "train-labels-idx1-ubyte")) if C else None
    L = lambda r: torch.tensor([r.next_int(C) for _ in range(B)], dtype=torch.int64) if C else None  # noqa: E731
    N, D, shape = imgs.shape[0], int(np.prod(imgs.shape[1:])), tuple(imgs.shape[1:])
    table = np.array([np.float32(v) / np.float32(255) * np.float32(2) - np.float32(1) for v in range(256)], np.float32)
    tr = DiJSTrainer(tt, json.loads(tmeta["config"]), float(tmeta["sigma_data"]), sigma_init=cfg["sigma_init"], batch=B, k=K,
                     lr_g=cfg["lr_generator"], lr_c=cfg["lr_classifier"], beta1=cfg["beta1"], grad_clip=cfg["grad_clip"],
                     ema_half_life=cfg["ema_half_life_images"], device=torch.device("cpu"))
    pm, ps = np.float32(cfg["p_mean"]), np.float32(cfg["p_std"])
    sig = lambda r: np.float32(np.exp(np.float64(pm + ps * r.normal())))  # noqa: E731  RatioNoiseLevels.draw
    T = lambda a, *s: torch.from_numpy(np.ascontiguousarray(np.asarray(a, np.float32).reshape(*s)))  # noqa: E731
    perms: dict[int, np.ndarray] = {}
    for s in range(steps):
        for k in range(K):
            j = s * K + k
            e, b = divmod(j, N // B)
            if e not in perms:
                perms[e] = Philox(seed, e).shuffled(N)
            idx = perms[e][b * B : (b + 1) * B]
            x0 = table[imgs[idx]]
            r = Philox(seed, 0x5243_4C53_0000_0000 | j)
            z = r.fill_normal(B * D)
            yf = L(r)  # drawGenerated: z, then the generated labels
            sr = [sig(r) for _ in range(B)]
            nr = r.fill_normal(B * D)
            sf = [sig(r) for _ in range(B)]
            nf = r.fill_normal(B * D)
            yr = torch.from_numpy(labs[idx].astype(np.int64)) if C else None
            tr.classifier_step(T(x0, B, *shape), tr.generate(T(z, B, *shape), yf), T(sr + sf, 2 * B),
                               T(np.concatenate([nr, nf]), 2 * B, *shape), yr, yf)
        r = Philox(seed, 0x5247_454E_0000_0000 | s)
        z = r.fill_normal(B * D)
        yg = L(r)
        sg = [sig(r) for _ in range(B)]
        loss, norm = tr.generator_step(T(z, B, *shape), T(sg, B), T(r.fill_normal(B * D), B, *shape), yg)
        tr.end_step()
        print(f"step {s + 1}: loss_g {float(loss):.7f} grad_norm_g {float(norm):.7g}")
    snap = load_file(os.path.join(run, "snapshots", "latest.safetensors"))
    gorder = gpu_teacher.registration_order(st["gen.ema"], {n: v for n, v in snap.items() if not n.startswith("classifier.")})
    corder = gpu_teacher.registration_order(st["cls.params"], {n[11:]: v for n, v in snap.items() if n.startswith("classifier.")})
    gp, cp = dict(zip(tr.gnames, tr.gparams)), dict(zip(tr.cnames, tr.cparams))
    flat = lambda d, order: np.concatenate([d[n].detach().float().numpy().reshape(-1) for n, _, _ in order])  # noqa: E731
    ours = {"gen.params": flat(gp, gorder), "gen.ema": flat(dict(zip(tr.gnames, tr.ema)), gorder),
            "gen.adam.m": flat({n: tr.opt_g.state[p]["exp_avg"] for n, p in gp.items()}, gorder),
            "gen.adam.v": flat({n: tr.opt_g.state[p]["exp_avg_sq"] for n, p in gp.items()}, gorder),
            "cls.params": flat(cp, corder),
            "cls.adam.m": flat({n: tr.opt_c.state[p]["exp_avg"] for n, p in cp.items()}, corder),
            "cls.adam.v": flat({n: tr.opt_c.state[p]["exp_avg_sq"] for n, p in cp.items()}, corder)}
    return gpu_teacher.compare_with_state(ours, st, run, '"loss_g"')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teacher", help="teacher snapshot (U-Net)")
    ap.add_argument("--data", default="data", help="data folder as Swift's --data-dir (or the train IDX file)")
    ap.add_argument("--data-name", default="", help="data set name (default: the teacher's provenance data)")
    ap.add_argument("--out")
    ap.add_argument("--seconds", type=float, default=480, help="training time limit (start-up and the final snapshot excluded)")
    ap.add_argument("--images", type=int, default=0, help="stop at this many generator images (0: time only)")
    ap.add_argument("--milestones", default="", help="generator images at which to write a snapshot (comma-separated; 0: the start)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--k", type=int, default=2, help="classifier steps per generator step (classifier_steps)")
    ap.add_argument("--lr-g", type=float, default=2e-4)
    ap.add_argument("--lr-c", type=float, default=2e-4)
    ap.add_argument("--beta1", type=float, default=0.5)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--ema-half-life", type=float, default=10_000, help="EMA half-life in generator images")
    ap.add_argument("--sigma-init", type=float, default=2.5)
    ap.add_argument("--p-mean", type=float, default=-1.2)
    ap.add_argument("--p-std", type=float, default=1.2)
    ap.add_argument("--p-mean-after", default="", metavar="IMAGES:P_MEAN",
                    help="from this many generator images on, the noise levels of both losses use this p_mean "
                         "(the Swift runs' `--resume --set p_mean=0`; e.g. 128000:0)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=50, help="generator steps per log line")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--verify-swift-run", default="", metavar="RUN",
                    help="instead of training: replay a tiny Swift dijs run on its Philox inputs and compare with its state")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.verify_swift_run:
        exit_with_verdict(verify_swift_run(args.verify_swift_run))
    if not args.teacher or not args.out:
        ap.error("--teacher and --out are required")
    os.makedirs(args.out, exist_ok=True)
    dev = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(args.seed)

    tmeta, tt = load_teacher(args.teacher)
    teacher_sha = sha256_file(args.teacher)
    ucfg = json.loads(tmeta["config"])
    C = int(ucfg.get("num_classes", 0))
    sd = float(tmeta.get("sigma_data", 0.5))
    data_name = args.data_name or json.loads(tmeta.get("provenance", "{}")).get("data", "mnist")
    B, K = args.batch, args.k
    tr = DiJSTrainer(tt, ucfg, sd, sigma_init=args.sigma_init, batch=B, k=K, lr_g=args.lr_g, lr_c=args.lr_c,
                     beta1=args.beta1, grad_clip=args.grad_clip, ema_half_life=args.ema_half_life, device=dev)

    imgs = torch.from_numpy(read_idx_images(find_train_file(args.data, data_name)).copy()).to(dev)
    labs = None
    if C:  # a class-conditional teacher: real images with their labels, generated ones for uniform labels
        labs = torch.from_numpy(
            read_idx_labels(find_train_file(args.data, data_name, "train-labels-idx1-ubyte")).astype(np.int64)).to(dev)
        if labs.shape[0] != imgs.shape[0] or int(labs.max()) >= C:
            raise SystemExit(f"{labs.shape[0]} labels up to {int(labs.max())} for {imgs.shape[0]} images and a teacher of {C} classes")
    table = (torch.arange(256, dtype=torch.float32) / 255 * 2 - 1).to(dev)  # Dataset.swift: Float(x)/255*2-1
    N = imgs.shape[0]
    per_epoch = N // B  # Batcher: full batches only, reshuffled every epoch
    rng = torch.Generator(device=dev).manual_seed(args.seed * 1_000_003 + 17)
    perm, cursor = None, per_epoch

    def real_batch() -> tuple[torch.Tensor, torch.Tensor | None]:
        nonlocal perm, cursor
        if cursor == per_epoch:
            perm = torch.randperm(N, generator=rng, device=dev)
            cursor = 0
        idx = perm[cursor * B : (cursor + 1) * B]
        cursor += 1
        return table[imgs[idx].long()], (labs[idx] if C else None)

    def fake_labels(n: int) -> torch.Tensor | None:  # drawGenerated: uniform over the classes
        return torch.randint(0, C, (n,), generator=rng, device=dev) if C else None

    shape = tuple(imgs.shape[1:])

    def randn(n: int) -> torch.Tensor:
        return torch.randn((n,) + shape, generator=rng, device=dev)

    p_mean = args.p_mean
    switch = None
    if args.p_mean_after:
        try:
            at, value = args.p_mean_after.split(":")
            switch = (int(at), float(value))
        except ValueError:
            ap.error(f"--p-mean-after: '{args.p_mean_after}' is not IMAGES:P_MEAN (e.g. 128000:0)")

    def sigmas(n: int) -> torch.Tensor:  # RatioNoiseLevels.draw: exp(P_mean + P_std n)
        return torch.exp(p_mean + args.p_std * torch.randn(n, generator=rng, device=dev))

    config = {  # OneStepConfig's keys (config.json of a Swift run)
        "teacher": args.teacher, "teacher_sha256": teacher_sha, "data": data_name, "data_dir": args.data,
        "method": "dijs", "init": "teacher", "sigma_init": args.sigma_init, "classifier_init": "teacher",
        "classifier": {"blocks": 2, "dim": int(np.prod(shape)), "noise_channels": 32, "num_classes": C,
                       "sigma_data": sd, "width": 128},
        "batch_size": B, "classifier_steps": K, "lr_generator": args.lr_g, "lr_classifier": args.lr_c,
        "beta1": args.beta1, "grad_clip": args.grad_clip, "total_images": args.images,
        "ema_half_life_images": args.ema_half_life, "seed": args.seed, "p_mean": args.p_mean, "p_std": args.p_std,
        "fkl_cap": 5, "classifier_warmup_steps": 0,
    }

    def write_config() -> None:
        with open(os.path.join(args.out, "config.json"), "w") as f:
            json.dump(dict(config, trained_by="tools/gpu_distill.py"), f, indent=2, sort_keys=True)

    write_config()
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"

    def save_snapshot(path: str) -> None:
        """Snapshot.save of OneStepTrainer.makeSnapshot: EMA generator, current classifier as part
        `classifier`, the same metadata keys (teacher's `config` and `sigma_data` verbatim)."""
        from safetensors.torch import save_file

        tensors = {n: e.detach().float().cpu().contiguous() for n, e in zip(tr.gnames, tr.ema)}
        tensors.update({"classifier." + n: p.detach().float().cpu().contiguous() for n, p in zip(tr.cnames, tr.cparams)})
        prov = {
            "method": "dijs", "init": "teacher", "teacher": args.teacher, "teacher_sha256": teacher_sha,
            "data": data_name, "images_seen": str(tr.images_seen), "classifier_images_seen": str(tr.step * K * B),
            "steps": str(tr.step), "run": args.out, "seed": str(args.seed), "config": json.dumps(config, sort_keys=True, separators=(",", ":")),
            "trained_by": "tools/gpu_distill.py", "device": device_name, "torch": torch.__version__,
        }
        meta = {
            "format": nn_reference.FORMAT, "arch": "unet", "config": tmeta["config"], "kind": "generator",
            "sigma_data": tmeta.get("sigma_data", "0.5"), "sigma_init": repr(float(np.float32(args.sigma_init))),
            "provenance": json.dumps(prov, sort_keys=True, separators=(",", ":")),
            "classifier_arch": RatioClassifierUNet.arch, "classifier_config": tr.cls.config_json(),
        }
        tmp = path + ".tmp"
        save_file(tensors, tmp, metadata=meta)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)

    milestones = sorted(int(x) for x in args.milestones.split(",") if x)
    logf = open(os.path.join(args.out, "log.jsonl"), "a")
    ng, nc = sum(p.numel() for p in tr.gparams), sum(p.numel() for p in tr.cparams)
    logf.write(json.dumps({"event": "start", "generator_parameters": ng, "classifier_parameters": nc,
                           "classifier_from_teacher": tr.copied, "method": "dijs", "init": "teacher", "data": data_name,
                           "teacher_sha256": teacher_sha, "device": device_name, "train_images": N}) + "\n")
    if milestones and milestones[0] == 0:
        save_snapshot(os.path.join(args.out, "snapshot-000000000.safetensors"))
        milestones.pop(0)
    print(f"start: generator {ng} params, classifier {nc} ({tr.copied} from the teacher), {N} training images, "
          f"batch {B}, K {K}, device {device_name}", flush=True)

    zero = lambda: torch.zeros((), device=dev)  # noqa: E731
    sums = {k: zero() for k in ("loss_c", "c_real", "c_fake", "acc_c", "loss_g", "grad_norm_g")}
    t0 = time.time()
    t_log, n_log = t0, 0
    last_snapshot = -1
    while True:
        # K classifier steps. The generator's weights do not change before the generator step, so
        # the K detached generated batches come from one forward of K*B fresh noises.
        yf = fake_labels(K * B)
        fakes = tr.generate(randn(K * B), yf)
        for k in range(K):
            x0, yr = real_batch()
            part = slice(k * B, (k + 1) * B)
            st = tr.classifier_step(x0, fakes[part], sigmas(2 * B), randn(2 * B), yr, None if yf is None else yf[part])
            for name, v in st.items():
                sums[name] += v / K
        loss_g, gnorm = tr.generator_step(randn(B), sigmas(B), randn(B), fake_labels(B))
        tr.end_step()
        sums["loss_g"] += loss_g
        sums["grad_norm_g"] += gnorm
        n_log += 1
        elapsed = time.time() - t0
        done = elapsed >= args.seconds or (args.images and tr.images_seen >= args.images)
        if n_log == args.log_every or done:
            vals = {k: float(v) / n_log for k, v in sums.items()}  # synchronises
            now = time.time()
            rec = {"step": tr.step, "images_seen": tr.images_seen, **vals, "images_per_s": n_log * B / (now - t_log),
                   "elapsed_s": round(now - t0, 1)}
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
            print(json.dumps(rec), flush=True)
            if not all(math.isfinite(v) for v in vals.values()):
                raise SystemExit(f"diverged at step {tr.step}: {vals}")
            t_log, n_log = now, 0
            sums = {k: zero() for k in sums}
        while milestones and tr.images_seen >= milestones[0]:
            save_snapshot(os.path.join(args.out, f"snapshot-{tr.images_seen:09d}.safetensors"))
            last_snapshot = tr.images_seen
            print(f"snapshot at {tr.images_seen} images", flush=True)
            milestones.pop(0)
        if switch and tr.images_seen >= switch[0] and p_mean != switch[1]:
            # After the milestone snapshots: a snapshot at the switch was trained at the old levels.
            p_mean = config["p_mean"] = switch[1]
            write_config()
            logf.write(json.dumps({"event": "config_set", "images_seen": tr.images_seen, "set": {"p_mean": p_mean}}) + "\n")
            print(f"noise levels of both losses: p_mean {p_mean} from {tr.images_seen} images", flush=True)
        if done:
            break
    if last_snapshot != tr.images_seen:
        save_snapshot(os.path.join(args.out, f"snapshot-{tr.images_seen:09d}.safetensors"))
    logf.write(json.dumps({"event": "end", "step": tr.step, "images_seen": tr.images_seen,
                           "elapsed_s": round(time.time() - t0, 1)}) + "\n")
    logf.close()
    print(f"end: {tr.images_seen} images, step {tr.step}, {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
