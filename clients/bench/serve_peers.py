#!/usr/bin/env python3
"""OneStep's daemon vs the MLServer + onnxruntime peer: the same KServe V2 requests from one load
generator, one server running at a time, points interleaved between servers.

    .venv-serve/bin/python clients/bench/serve_peers.py [--quick] [--duration 15] [--rounds 2]
        [--counts 1,8] [--concurrency 32] [--only onestep|mlserver] [--instances I]

Servers (each started for its point and stopped after it; never two at once):
  onestep   `onestep serve --threads 2 [--instances I] --max-batch-size 64 --max-queue-delay-ms 2`
            on a repository holding only the benchmarked model.
  mlserver  MLServer 1.7.1 with clients/bench/mlserver/runtime.py (Philox + Box-Muller noise, the
            ONNX export of the same generator, EDM preconditioning in numpy), adaptive batching
            max_batch_size 64 / max_batch_time 2 ms, in two configurations: WxT = W parallel
            workers x T onnxruntime intra-op threads (1x2 and 2x1).

First a correctness check (seeds 0..7, one 8-seed request and eight concurrent 1-seed requests per
server): every MLServer configuration's "sample" must match the daemon's within --tolerance
(1e-4 max abs) or the run stops. Then for each round, each count (samples per request) and each
server in turn: start the server, closed loop with --concurrency requests in flight (after
--warmup s) for --duration s -> saturation samples/s; then an open loop (Poisson arrivals) at half
of that server's own saturation request rate for --duration s -> p50/p99 latency (from each
request's scheduled send time); stop the server. Per point: the 1-minute load average before and
after, and foreign CPU = share of all CPU time (all cores, from /proc/stat) used by processes other
than the server's process tree and this load generator (from /proc/PID/stat), over the point.

Needs: grpcio and tritonclient[grpc] (its KServe V2 protos) in the running python (.venv-serve);
.venv-mlserver (clients/bench/mlserver/requirements.txt) for the peer; .venv (torch, onnx,
safetensors) once to export the ONNX model unless --onnx-dir gives an export.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
MLDIR = os.path.join(HERE, "mlserver")
sys.path.insert(0, MLDIR)
import export as ms_export  # noqa: E402  (stdlib only at import time)

try:
    import grpc
    from tritonclient.grpc import service_pb2 as pb
    from tritonclient.grpc import service_pb2_grpc as pb_grpc
except ImportError as e:  # pragma: no cover
    raise SystemExit(f"needs grpcio and tritonclient[grpc] ({e}); run with .venv-serve/bin/python")

MAX_MSG = 64 << 20


# ------------------------------------------------------------------------------------------ machine

def machine_info() -> str:
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    la = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"machine: {model}, {os.cpu_count()} CPUs visible, {now}, load average {la}"


def cpu_total() -> tuple[int, int]:
    """(all jiffies, busy jiffies) over all CPUs from /proc/stat (busy = all - idle - iowait)."""
    f = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    total = sum(f[:8])   # user nice system idle iowait irq softirq steal (guest is inside user)
    return total, total - f[3] - f[4]


def proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, utime + stime jiffies) for every process."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            s = open(f"/proc/{d}/stat").read()
        except OSError:
            continue
        rest = s[s.rindex(")") + 2:].split()
        out[int(d)] = (int(rest[1]), int(rest[11]) + int(rest[12]))
    return out


def tree_cpu(table: dict[int, tuple[int, int]], roots: list[int]) -> dict[int, int]:
    """pid -> cpu jiffies for the roots and all their descendants."""
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, stack = {}, [r for r in roots if r in table]
    while stack:
        p = stack.pop()
        if p in out:
            continue
        out[p] = table[p][1]
        stack.extend(kids.get(p, []))
    return out


class CPUMeter:
    """Foreign CPU over an interval: total busy minus the server tree minus this process tree
    (the load generator), as a fraction of all CPU time (all cores)."""

    def __init__(self, server_pid: int):
        self.server_pid = server_pid
        self.t0 = cpu_total()
        tab = proc_table()
        self.s0 = tree_cpu(tab, [server_pid])
        self.me0 = tree_cpu(tab, [os.getpid()])

    def stop(self) -> dict:
        t1 = cpu_total()
        tab = proc_table()
        s1 = tree_cpu(tab, [self.server_pid])
        me1 = {p: v for p, v in tree_cpu(tab, [os.getpid()]).items() if p not in s1}
        total, busy = t1[0] - self.t0[0], t1[1] - self.t0[1]
        server = sum(v - self.s0.get(p, 0) for p, v in s1.items())
        me = sum(v - self.me0.get(p, 0) for p, v in me1.items())
        foreign = max(0, busy - server - me)
        return {"foreign": foreign / total if total else 0.0, "server": server / total if total else 0.0,
                "loadgen": me / total if total else 0.0, "busy": busy / total if total else 0.0}


# ------------------------------------------------------------------------------------------ servers

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_ready(addr: str, model: str, proc: subprocess.Popen, log: str, timeout: float = 180) -> None:
    t_end = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(addr) as ch:
        stub = pb_grpc.GRPCInferenceServiceStub(ch)
        while time.monotonic() < t_end:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}; log {log}:\n{tail(log)}")
            try:
                r = await stub.ModelReady(pb.ModelReadyRequest(name=model), timeout=2)
                if r.ready:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"server not ready after {timeout:.0f} s; log {log}:\n{tail(log)}")


def tail(path: str, n: int = 30) -> str:
    try:
        return "".join(open(path, errors="replace").readlines()[-n:])
    except OSError:
        return "(no log)"


class Server:
    name = config = ""
    proc: subprocess.Popen | None = None
    addr = ""

    def stop(self) -> None:
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        try:
            os.killpg(p.pid, signal.SIGTERM)   # the group this script created for the server
        except ProcessLookupError:
            return
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(p.pid, signal.SIGKILL)   # leftover workers of the same group
        except ProcessLookupError:
            pass
        p.wait()

    def _spawn(self, cmd: list[str], log: str, env=None, cwd=None) -> None:
        with open(log, "w") as f:
            self.proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                         start_new_session=True)


class OneStepDaemon(Server):
    def __init__(self, args, work: str):
        self.name, self.args, self.work = "onestep", args, work
        inst = "default" if args.instances is None else str(args.instances)
        self.config = f"2 threads, instances {inst}"
        # A repository holding only the benchmarked model (MLServer serves only it too).
        self.repo = os.path.join(work, "onestep-repo")
        os.makedirs(self.repo, exist_ok=True)
        link = os.path.join(self.repo, args.model)
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(os.path.join(args.repository, args.model)), link)

    async def start(self) -> None:
        pf = os.path.join(self.work, "onestep-ports.json")
        if os.path.exists(pf):
            os.remove(pf)
        cmd = [self.args.onestep_bin, "serve", "--repository", self.repo, "--port", "0", "--metrics-port=-1", "--http-port=-1",
               "--port-file", pf, "--threads", "2", "--max-batch-size", "64", "--max-queue-delay-ms", "2",
               "--log-level", "warning"]
        if self.args.instances is not None:
            cmd += ["--instances", str(self.args.instances)]
        log = os.path.join(self.work, "onestep.log")
        self._spawn(cmd, log)
        t_end = time.monotonic() + 120
        while not (os.path.exists(pf) and os.path.getsize(pf) > 0):
            if self.proc.poll() is not None or time.monotonic() > t_end:
                raise RuntimeError(f"onestep serve did not start; log {log}:\n{tail(log)}")
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.05)
        self.addr = f"127.0.0.1:{json.load(open(pf))['grpc']}"
        await wait_ready(self.addr, self.args.model, self.proc, log)


class MLServerPeer(Server):
    def __init__(self, args, work: str, onnx_dir: str, workers: int, threads: int):
        self.name, self.args, self.onnx_dir = "mlserver", args, onnx_dir
        self.workers, self.threads = workers, threads
        self.config = f"{workers}x{threads}"
        self.root = os.path.join(work, f"mlserver-{workers}x{threads}")
        self.work = work

    async def start(self) -> None:
        gport, hport = free_port(), free_port()
        ms_export.write_settings(self.root, self.onnx_dir, self.workers, self.threads, gport, hport,
                                 name=self.args.model)
        env = dict(os.environ)
        env["PYTHONPATH"] = MLDIR + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        log = os.path.join(self.work, f"mlserver-{self.config}.log")
        self._spawn([self.args.mlserver_bin, "start", self.root], log, env=env, cwd=self.root)
        self.addr = f"127.0.0.1:{gport}"
        await wait_ready(self.addr, self.args.model, self.proc, log)


# ------------------------------------------------------------------------------------------ load

def make_request(model: str, seeds: np.ndarray) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name=model)
    t = req.inputs.add()
    t.name, t.datatype = "seed", "INT64"
    t.shape.append(len(seeds))
    req.outputs.add().name = "sample"
    req.raw_input_contents.append(seeds.astype("<i8").tobytes())
    return req


def decode_sample(resp: pb.ModelInferResponse) -> np.ndarray:
    for i, o in enumerate(resp.outputs):
        if o.name == "sample":
            if o.datatype != "FP32":
                raise RuntimeError(f"sample datatype {o.datatype}")
            if resp.raw_output_contents:
                a = np.frombuffer(resp.raw_output_contents[i], "<f4")
            else:
                a = np.array(o.contents.fp32_contents, np.float32)
            return a.reshape(list(o.shape))
    raise RuntimeError("no 'sample' output")


class Load:
    def __init__(self, addr: str, model: str):
        self.ch = grpc.aio.insecure_channel(addr, options=[("grpc.max_receive_message_length", MAX_MSG),
                                                           ("grpc.max_send_message_length", MAX_MSG)])
        self.stub = pb_grpc.GRPCInferenceServiceStub(self.ch)
        self.model = model
        self.next_seed = random.randrange(1 << 40)

    async def close(self):
        await self.ch.close()

    def seeds(self, n: int) -> np.ndarray:
        s = np.arange(self.next_seed, self.next_seed + n, dtype=np.int64)
        self.next_seed += n
        return s

    async def infer(self, seeds: np.ndarray, timeout: float = 60) -> np.ndarray:
        return decode_sample(await self.stub.ModelInfer(make_request(self.model, seeds), timeout=timeout))

    async def closed(self, count: int, concurrency: int, warmup: float, duration: float) -> dict:
        """`concurrency` requests always in flight; counts the requests that complete inside the
        measured window (whenever they started); issues none after the window and lets the ones in
        flight finish (uncounted), so the server is idle again when it returns."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        t_meas, t_end = t0 + warmup, t0 + warmup + duration
        done = fails = 0
        lat = []

        async def worker():
            nonlocal done, fails
            while loop.time() < t_end:
                s = loop.time()
                try:
                    await self.stub.ModelInfer(make_request(self.model, self.seeds(count)), timeout=120)
                    ok = True
                except grpc.aio.AioRpcError:
                    ok = False
                e = loop.time()
                if t_meas <= e <= t_end:
                    if ok:
                        done += 1
                        lat.append(e - s)
                    else:
                        fails += 1

        await asyncio.gather(*[worker() for _ in range(concurrency)])
        return {"samples_per_s": done * count / duration, "requests_per_s": done / duration, "failed": fails,
                "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99)}

    async def open(self, count: int, rate: float, warmup: float, duration: float, max_inflight: int = 4096) -> dict:
        """Poisson arrivals at `rate` requests/s; latency from each request's scheduled time."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        t_meas, t_end = t0 + warmup, t0 + warmup + duration
        lat, fails, dropped, inflight = [], 0, 0, set()
        rng = random.Random(12345)

        async def one(sched: float, measured: bool):
            nonlocal fails
            try:
                await self.stub.ModelInfer(make_request(self.model, self.seeds(count)), timeout=60)
                if measured:
                    lat.append(loop.time() - sched)
            except grpc.aio.AioRpcError:
                if measured:
                    fails += 1

        t = t0
        while True:
            t += rng.expovariate(rate)
            if t >= t_end:
                break
            d = t - loop.time()
            if d > 0:
                await asyncio.sleep(d)
            if len(inflight) >= max_inflight:
                dropped += 1
                continue
            task = asyncio.ensure_future(one(t, t >= t_meas))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
        if inflight:
            await asyncio.gather(*list(inflight))
        return {"rate": rate, "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "completed": len(lat),
                "failed": fails + dropped}


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    return float(np.percentile(np.asarray(xs) * 1e3, p))


# ------------------------------------------------------------------------------------------ checks

async def samples_of(server: Server, model: str) -> tuple[np.ndarray, np.ndarray]:
    """Seeds 0..7 as one request, and as eight concurrent one-seed requests."""
    ld = Load(server.addr, model)
    try:
        seeds = np.arange(8, dtype=np.int64)
        one = await ld.infer(seeds)
        singles = await asyncio.gather(*[ld.infer(seeds[i:i + 1]) for i in range(8)])
        return one, np.concatenate(singles, 0)
    finally:
        await ld.close()


async def correctness(servers: list[Server], args) -> list[str]:
    lines, ref = [], None
    for srv in servers:
        await srv.start()
        try:
            one, singles = await samples_of(srv, args.model)
        finally:
            srv.stop()
        if list(one.shape[:1]) != [8] or one.shape != singles.shape:
            raise SystemExit(f"{srv.name} {srv.config}: sample shapes {one.shape}, {singles.shape}")
        self_diff = float(np.abs(one - singles).max())
        line = f"{srv.name} {srv.config}: sample {list(one.shape)} FP32; batched vs single requests max |diff| {self_diff:.3g}"
        worst = self_diff
        if ref is None and srv.name == "onestep":
            ref = one
        elif ref is not None:
            d = max(float(np.abs(one - ref).max()), float(np.abs(singles - ref).max()))
            line += f"; vs onestep max |diff| {d:.3g}"
            worst = max(worst, d)
        print(line, flush=True)
        lines.append(line)
        if worst > args.tolerance or not np.isfinite(worst):
            raise SystemExit(f"correctness check failed: max |diff| {worst:.3g} > {args.tolerance:g}")
    if ref is None:
        print("(no onestep daemon in this run: no cross-server comparison)")
    return lines


# ------------------------------------------------------------------------------------------ bench

async def point(srv: Server, args, count: int, rnd: int) -> dict:
    await srv.start()
    try:
        la0 = os.getloadavg()[0]
        meter = CPUMeter(srv.proc.pid)
        ld = Load(srv.addr, args.model)
        try:
            sat = await ld.closed(count, args.concurrency, args.warmup, args.duration)
            rate = max(0.1, sat["requests_per_s"] / 2)
            opn = await ld.open(count, rate, args.warmup, args.duration)
        finally:
            await ld.close()
        cpu = meter.stop()
        la1 = os.getloadavg()[0]
    finally:
        srv.stop()
    row = {"server": srv.name, "config": srv.config, "count": count, "round": rnd,
           "samples_per_s": sat["samples_per_s"], "closed_failed": sat["failed"],
           "open_rate": rate, "p50_ms": opn["p50_ms"], "p99_ms": opn["p99_ms"], "open_failed": opn["failed"],
           "load_before": la0, "load_after": la1, "foreign_cpu": cpu["foreign"], "server_cpu": cpu["server"],
           "loadgen_cpu": cpu["loadgen"]}
    print(f"  {srv.name} {srv.config} count {count} round {rnd}: {row['samples_per_s']:.0f} samples/s, "
          f"open {rate:.1f} req/s p50 {row['p50_ms']:.1f} ms p99 {row['p99_ms']:.1f} ms, "
          f"load {la0:.2f}->{la1:.2f}, foreign CPU {100 * cpu['foreign']:.1f}%", flush=True)
    return row


def print_tables(rows: list[dict]) -> None:
    print("\n| server | config | count | round | samples/s | p50 ms | p99 ms | load | foreign CPU % |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        fail = r["closed_failed"] + r["open_failed"]
        note = f" ({fail} failed)" if fail else ""
        print(f"| {r['server']} | {r['config']} | {r['count']} | {r['round']} | {r['samples_per_s']:.0f}{note} | "
              f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['load_before']:.2f}->{r['load_after']:.2f} | "
              f"{100 * r['foreign_cpu']:.1f} |")

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["server"], r["config"], r["count"]), []).append(r)
    med = {k: {f: statistics.median(x[f] for x in v) for f in ("samples_per_s", "p50_ms", "p99_ms", "foreign_cpu")}
           for k, v in groups.items()}
    print("\nMedians over rounds; ratio = OneStep / best MLServer configuration (samples/s: higher is better; "
          "latencies are each at half the server's own saturation rate).\n")
    print("| server | config | count | rounds | samples/s | p50 ms | p99 ms | foreign CPU % | OneStep / best MLServer |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (s, c, n), m in med.items():
        ratio = ""
        if s == "onestep":
            peers = [v["samples_per_s"] for (s2, _, n2), v in med.items() if s2 == "mlserver" and n2 == n]
            if peers and max(peers) > 0:
                ratio = f"{m['samples_per_s'] / max(peers):.2f}x"
        print(f"| {s} | {c} | {n} | {len(groups[(s, c, n)])} | {m['samples_per_s']:.0f} | {m['p50_ms']:.1f} | "
              f"{m['p99_ms']:.1f} | {100 * m['foreign_cpu']:.1f} | {ratio} |")


def ensure_onnx(args, work: str) -> str:
    if args.onnx_dir:
        d = args.onnx_dir
        if not os.path.exists(os.path.join(d, "model.onnx")):
            raise SystemExit(f"--onnx-dir {d}: no model.onnx (write one with clients/bench/mlserver/export.py model)")
        return d
    d = os.path.join(work, "onnx")
    snap = args.snapshot or os.path.join(args.repository, args.model, str(args.version), "model.safetensors")
    py = args.export_python
    print(f"exporting {snap} -> {d}/model.onnx with {py}", flush=True)
    subprocess.run([py, os.path.join(MLDIR, "export.py"), "model", "--snapshot", snap, "--out", d,
                    "--groupnorm", args.onnx_groupnorm],
                   check=True, stdout=subprocess.DEVNULL)
    return d


def versions(args) -> str:
    out = []
    try:
        v = subprocess.run([args.onestep_bin, "--version"], capture_output=True, text=True, timeout=20).stdout.strip()
        out.append(f"onestep {v}")
    except Exception:
        pass
    py = os.path.join(os.path.dirname(args.mlserver_bin), "python")
    try:
        v = subprocess.run([py, "-c", "import mlserver, onnxruntime as o; print(mlserver.__version__, o.__version__)"],
                           capture_output=True, text=True, timeout=60).stdout.split()
        out.append(f"mlserver {v[0]}, onnxruntime {v[1]}")
    except Exception:
        pass
    out.append(f"load generator: python {sys.version.split()[0]}, grpcio {grpc.__version__}")
    return "; ".join(out)


async def amain(args) -> None:
    print(machine_info())
    print(versions(args))
    work = tempfile.mkdtemp(prefix="serve-peers-")
    servers: list[Server] = []
    try:
        if args.only in (None, "onestep"):
            servers.append(OneStepDaemon(args, work))
        if args.only in (None, "mlserver"):
            onnx_dir = ensure_onnx(args, work)
            for c in args.mlserver_configs.split(","):
                w, t = (int(v) for v in c.lower().split("x"))
                servers.append(MLServerPeer(args, work, onnx_dir, w, t))
        print(f"model {args.model} (repository {args.repository}); counts {args.counts}; concurrency "
              f"{args.concurrency}; {args.duration:g} s per phase after {args.warmup:g} s warm-up; {args.rounds} round(s)")
        print("\ncorrectness (seeds 0..7):", flush=True)
        await correctness(servers, args)
        print("\npoints:", flush=True)
        rows = []
        for rnd in range(1, args.rounds + 1):
            for count in args.counts:
                for srv in servers:
                    rows.append(await point(srv, args, count, rnd))
        print_tables(rows)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=2)
    finally:
        for s in servers:
            s.stop()
        if args.keep_work:
            print(f"(work directory kept: {work})")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=None, help="s per closed / open phase (15; --quick 4)")
    ap.add_argument("--warmup", type=float, default=None, help="s before each phase (3; --quick 1)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds over all points (2; --quick 1)")
    ap.add_argument("--counts", default="1,8", help="samples per request, comma-separated")
    ap.add_argument("--concurrency", type=int, default=32, help="closed-loop requests in flight")
    ap.add_argument("--onestep-bin", default=os.path.join(ROOT, ".build", "release", "onestep"))
    ap.add_argument("--repository", default=os.path.join(ROOT, "models", "serve"))
    ap.add_argument("--model", default="mnist-onestep")
    ap.add_argument("--version", type=int, default=2, help="model version exported for MLServer")
    ap.add_argument("--snapshot", default=None, help="snapshot to export (default REPOSITORY/MODEL/VERSION/model.safetensors)")
    ap.add_argument("--instances", type=int, default=None, help="onestep --instances (default: the daemon's default)")
    ap.add_argument("--mlserver-configs", default="1x2,2x1", help="WORKERSxTHREADS list")
    ap.add_argument("--mlserver-bin", default=os.path.join(ROOT, ".venv-mlserver", "bin", "mlserver"))
    ap.add_argument("--export-python", default=os.path.join(ROOT, ".venv", "bin", "python"),
                    help="python with torch, onnx, safetensors for the ONNX export")
    ap.add_argument("--onnx-dir", default=None, help="existing export (model.onnx + generator.json)")
    ap.add_argument("--onnx-groupnorm", choices=["native", "instancenorm"], default="native",
                    help="GroupNorm in the export: GroupNormalization (opset 21) or Reshape+InstanceNormalization")
    ap.add_argument("--tolerance", type=float, default=1e-4, help="max |diff| of the correctness check")
    ap.add_argument("--only", choices=["onestep", "mlserver"], default=None)
    ap.add_argument("--quick", action="store_true", help="short points, one round (smoke run)")
    ap.add_argument("--json", default=None, help="also write the per-point rows as JSON")
    ap.add_argument("--keep-work", action="store_true", help="keep the temporary directory (logs, settings)")
    args = ap.parse_args()
    args.counts = [int(v) for v in args.counts.split(",") if v.strip()]
    if args.duration is None:
        args.duration = 4.0 if args.quick else 15.0
    if args.warmup is None:
        args.warmup = 1.0 if args.quick else 3.0
    if args.rounds is None:
        args.rounds = 1 if args.quick else 2
    if args.only != "mlserver" and not os.access(args.onestep_bin, os.X_OK):
        ap.error(f"--onestep-bin {args.onestep_bin} is not executable")
    if args.only != "onestep" and not os.access(args.mlserver_bin, os.X_OK):
        ap.error(f"--mlserver-bin {args.mlserver_bin} is not executable (set up .venv-mlserver)")
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
