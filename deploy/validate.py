#!/usr/bin/env python3
"""Static checks of everything under deploy/ (stdlib + PyYAML, both in Debian 12's python3).

    python3 deploy/validate.py [--binary PATH] [--no-tools]

Checks, against the sources of truth in the repository:
  * deploy/k8s/*.yaml: apiVersions and kinds; HTTP readiness/liveness probes (/v2/health/*) on the
    container's HTTP port, a gRPC startup probe; ports
    consistent between the Deployment, both Services and the daemon's defaults (ServerConfig.swift);
    non-root, read-only root file system; drain time >= the daemon's shutdown grace; the HPA targets
    the Deployment; the Indexed Job's --shard K/N uses JOB_COMPLETION_INDEX and N == completions,
    and its --server names the headless Service.
  * deploy/Dockerfile: stages, builder apt packages contain the Makefile's DEB_PACKAGES, runtime
    packages, non-root USER (same uid as Kubernetes' runAsUser), EXPOSE == the daemon's ports,
    ENTRYPOINT, and that deploy/Dockerfile.dockerignore lets every COPY source through.
  * deploy/systemd/onestep.service: the hardening and lifecycle directives; `systemd-analyze verify`
    and `systemd-analyze security --offline=true` when systemd-analyze is installed.
  * deploy/nginx/onestep-grpc.conf: grpc_pass to an HTTP/2 upstream with keepalive, timeouts, body
    size, failover values nginx accepts; `nginx -t` on it with placeholder upstreams when nginx is
    installed.
  * --binary PATH (or $ONESTEP_BIN): the runtime image's packages provide every non-Swift shared
    library the binary loads (the Swift runtime is linked statically by the Dockerfile).

Prints one line per check and "validate: N passed, M failed"; exits 1 on any failure.
"""
import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:  # pragma: no cover
    print("validate: error: PyYAML is missing (Debian: apt-get install python3-yaml)")
    sys.exit(1)

DEPLOY = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(DEPLOY)

PASSED = 0
FAILED = 0


def check(cond, what, detail=""):
    global PASSED, FAILED
    if cond:
        PASSED += 1
        print(f"  ok   {what}")
    else:
        FAILED += 1
        print(f"  FAIL {what}" + (f": {detail}" if detail else ""))
    return bool(cond)


def note(what):
    print(f"  note {what}")


def section(name):
    print(f"{name}:")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# ---------------------------------------------------------------------------------------------
# Sources of truth: the daemon's defaults and the Makefile's Debian packages.

def server_defaults():
    """gRPC port, metrics port, shutdown grace, max request bytes from ServerConfig.swift."""
    d = {"port": 8001, "metricsPort": 8002, "httpPort": 8000, "shutdownGraceSeconds": 30.0, "maxRequestBytes": 4 << 20}
    path = os.path.join(ROOT, "Sources/SamplerServer/Config/ServerConfig.swift")
    try:
        text = read(path)
    except OSError:
        note(f"{path} not found: using built-in defaults {d}")
        return d
    for key in list(d):
        m = re.search(rf"public var {key}\s*=\s*([0-9_.<\s]+)", text)
        if not m:
            note(f"ServerConfig.swift: no default for {key}; using {d[key]}")
            continue
        expr = m.group(1).replace("_", "").strip()
        if re.fullmatch(r"[0-9.]+(\s*<<\s*[0-9]+)?", expr):
            d[key] = eval(expr, {"__builtins__": {}})  # digits and << only, checked above
    return d


def makefile_deb_packages():
    text = read(os.path.join(ROOT, "Makefile"))
    m = re.search(r"^DEB_PACKAGES\s*:?=\s*(.*)$", text, re.M)
    if not m:
        return None
    return m.group(1).split()


# ---------------------------------------------------------------------------------------------
# Dockerfile

def parse_dockerfile(text):
    """[(instruction, args, line)] with continuations joined and comments dropped."""
    out, buf, start = [], "", 0
    escape = "\\"
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        m = re.match(r"#\s*escape\s*=\s*(\S)", line)
        if m and not out and not buf:
            escape = m.group(1)
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue  # comment lines inside a continued instruction
        if not buf:
            start = i
        if line.endswith(escape):
            buf += line[:-1] + " "
            continue
        buf += line
        parts = buf.strip().split(None, 1)
        out.append((parts[0].upper(), parts[1] if len(parts) > 1 else "", start))
        buf = ""
    if buf:
        parts = buf.strip().split(None, 1)
        out.append((parts[0].upper(), parts[1] if len(parts) > 1 else "", start))
    return out


def apt_packages(run_args):
    """Package names given to `apt-get install` in one RUN line (options dropped)."""
    pkgs = []
    for cmd in re.split(r"&&|;|\|\|", run_args):
        toks = cmd.split()
        for j in range(len(toks) - 1):
            if toks[j] in ("apt-get", "apt") and "install" in toks[j + 1:j + 4]:
                k = toks.index("install", j) + 1
                pkgs += [t for t in toks[k:] if not t.startswith("-") and re.fullmatch(r"[a-z0-9][a-z0-9+.\-]*(=\S+)?", t)]
                break
    return [p.split("=")[0] for p in pkgs]


def exec_form(args):
    args = args.strip()
    if args.startswith("["):
        import json
        return json.loads(args)
    return shlex.split(args)


def dockerignore_includes(patterns, path):
    """Whether `path` (relative, '/'-separated) is sent to the builder: the last matching pattern
    wins; a pattern matches the path or any of its parent folders (Docker's rules, simplified)."""
    import fnmatch
    included = True
    parts = path.split("/")
    prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.strip("/")
        hit = False
        for pre in prefixes:
            if fnmatch.fnmatchcase(pre, p) or (p.startswith("**/") and fnmatch.fnmatchcase(pre.split("/")[-1], p[3:])):
                hit = True
                break
        if hit:
            included = neg
    return included


def validate_dockerfile(cfg, k8s_uid):
    section("Dockerfile (deploy/Dockerfile; parsed only: no docker engine here)")
    path = os.path.join(DEPLOY, "Dockerfile")
    if not check(os.path.isfile(path), "deploy/Dockerfile exists"):
        return
    ins = parse_dockerfile(read(path))
    global_args = {}
    stages = []  # dicts: name, base, instrs
    for op, args, line in ins:
        if op == "ARG" and not stages:
            k, _, v = args.partition("=")
            global_args[k.strip()] = v.strip().strip('"')
        elif op == "FROM":
            toks = args.split()
            toks = [t for t in toks if not t.startswith("--platform")]
            base = re.sub(r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), toks[0])
            name = toks[2] if len(toks) >= 3 and toks[1].upper() == "AS" else str(len(stages))
            stages.append({"name": name, "base": base, "instrs": []})
        elif stages:
            stages[-1]["instrs"].append((op, args, line))
    check(len(stages) >= 2, "multi-stage build", f"{len(stages)} stage(s)")
    if len(stages) < 2:
        return
    builder, final = stages[0], stages[-1]
    check(re.match(r"(debian:(12|bookworm)|swift:6\.\d+(\.\d+)?-bookworm)", builder["base"]) is not None,
          f"builder stage '{builder['name']}' is Debian 12 based ({builder['base']})")
    check(final["base"] in ("debian:bookworm-slim", "debian:12-slim"),
          f"runtime stage '{final['name']}' is debian:bookworm-slim ({final['base']})")

    def pkgs(stage):
        out = []
        for op, args, _ in stage["instrs"]:
            if op == "RUN":
                out += apt_packages(args)
        return out

    deb = makefile_deb_packages()
    if check(deb is not None, "Makefile defines DEB_PACKAGES"):
        bp = set(pkgs(builder))
        missing = [p for p in deb if p not in bp]
        check(not missing, f"builder installs the Makefile's DEB_PACKAGES ({' '.join(deb)})", f"missing {missing}")
    runtime_pkgs = set(pkgs(final))
    need = ["libopenblas0-pthread", "libpng16-16", "ca-certificates"]
    check(all(p in runtime_pkgs for p in need), f"runtime installs {' '.join(need)}",
          f"has {sorted(runtime_pkgs)}")
    dev = [p for p in runtime_pkgs if p.endswith("-dev")]
    check(not dev, "runtime stage installs no -dev packages", f"{dev}")

    builds = [a for op, a, _ in builder["instrs"] if op == "RUN" and "swift build" in a]
    check(any("-c release" in a for a in builds), "builder runs `swift build -c release`")
    check(any("--static-swift-stdlib" in a for a in builds),
          "builder links the Swift runtime statically (--static-swift-stdlib; the runtime image has no toolchain)")
    copies_from = [a for op, a, _ in final["instrs"] if op == "COPY" and "--from=" in a]
    check(any(f"--from={builder['name']}" in a for a in copies_from), "runtime copies the binary from the builder")
    model_copy = [a for op, a, _ in final["instrs"] if op == "COPY" and "models/serve" in a]
    check(bool(model_copy), "runtime copies models/serve")

    users = [a.strip() for op, a, _ in final["instrs"] if op == "USER"]
    user = users[-1] if users else "root"
    uid = user.split(":")[0]
    check(uid not in ("root", "0", ""), f"runtime runs as non-root (USER {user})")
    if k8s_uid is not None and uid.isdigit():
        check(int(uid) == k8s_uid, f"USER uid {uid} equals Kubernetes runAsUser {k8s_uid}")

    exposed = set()
    for op, a, _ in final["instrs"]:
        if op == "EXPOSE":
            exposed |= {int(t.split("/")[0]) for t in a.split()}
    want = {cfg["port"], cfg["metricsPort"], cfg["httpPort"]}
    check(exposed == want, f"EXPOSE {sorted(exposed)} equals the daemon's gRPC, metrics and HTTP ports {sorted(want)}")

    eps = [exec_form(a) for op, a, _ in final["instrs"] if op == "ENTRYPOINT"]
    ep = eps[-1] if eps else []
    ep_raw = [a.strip() for op, a, _ in final["instrs"] if op == "ENTRYPOINT"]
    check(bool(ep_raw) and ep_raw[-1].startswith("["), "ENTRYPOINT in exec form (the daemon is PID 1 and gets SIGTERM)")
    check(len(ep) >= 2 and ep[0].endswith("onestep") and ep[1] == "serve", f"ENTRYPOINT runs `onestep serve` ({ep})")

    def flag(argv, name):
        for i, t in enumerate(argv):
            if t == name and i + 1 < len(argv):
                return argv[i + 1]
            if t.startswith(name + "="):
                return t.split("=", 1)[1]
        return None

    check(flag(ep, "--host") == "0.0.0.0", "ENTRYPOINT listens on 0.0.0.0 (reachable from outside the container)")
    check(flag(ep, "--repository") == "/models", "ENTRYPOINT serves the repository /models")
    hc = [a for op, a, _ in final["instrs"] if op == "HEALTHCHECK"]
    check(bool(hc), "HEALTHCHECK present (or NONE stated)")
    if hc and "NONE" not in hc[-1].upper().split():
        check(f"/{cfg['httpPort']}" in hc[-1] and "/v2/health/ready" in hc[-1] and " 200 " in hc[-1],
              f"HEALTHCHECK asks GET /v2/health/ready on the HTTP port {cfg['httpPort']} for a 200")
    ss = [a.strip() for op, a, _ in final["instrs"] if op == "STOPSIGNAL"]
    check(not ss or ss[-1] in ("SIGTERM", "15"), "STOPSIGNAL is SIGTERM (the daemon drains on it)")

    # Build context: deploy/Dockerfile.dockerignore must let every COPY source through and keep
    # the multi-gigabyte build and venv folders out.
    ign = os.path.join(DEPLOY, "Dockerfile.dockerignore")
    if check(os.path.isfile(ign), "deploy/Dockerfile.dockerignore exists (BuildKit's per-Dockerfile ignore file)"):
        pats = [l.strip() for l in read(ign).splitlines() if l.strip() and not l.strip().startswith("#")]
        for st in stages:
            for op, a, _ in st["instrs"]:
                if op not in ("COPY", "ADD") or "--from=" in a:
                    continue
                toks = [t for t in exec_form(a) if not t.startswith("--")]
                for src in toks[:-1]:
                    src = src.rstrip("/")
                    concrete = [s for s in ([src] if "*" not in src else
                                [f for f in os.listdir(ROOT) if __import__("fnmatch").fnmatch(f, src)])]
                    for s in concrete:
                        check(dockerignore_includes(pats, s) and os.path.exists(os.path.join(ROOT, s)),
                              f"build context has COPY source '{s}'")
        for junk in (".build", ".venv", "data", "runs", ".git"):
            check(not dockerignore_includes(pats, junk), f"build context leaves out {junk}/")


# ---------------------------------------------------------------------------------------------
# Kubernetes

KNOWN = {("apps/v1", "Deployment"), ("v1", "Service"), ("autoscaling/v2", "HorizontalPodAutoscaler"),
         ("batch/v1", "Job"), ("policy/v1", "PodDisruptionBudget"), ("v1", "ConfigMap"), ("v1", "Secret"),
         ("v1", "PersistentVolumeClaim")}


def load_k8s():
    docs = []
    kdir = os.path.join(DEPLOY, "k8s")
    for fn in sorted(os.listdir(kdir)):
        if not fn.endswith((".yaml", ".yml")):
            continue
        try:
            for d in yaml.safe_load_all(read(os.path.join(kdir, fn))):
                if d is not None:
                    docs.append((fn, d))
            check(True, f"k8s/{fn} parses")
        except yaml.YAMLError as e:
            check(False, f"k8s/{fn} parses", str(e).replace("\n", " "))
    return docs


def labels_match(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def container_ports(c):
    return {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}


def resolve_target(target, ports):
    if isinstance(target, int):
        return target if target in ports.values() else None
    return ports.get(target)


def cpu_cores(q):
    q = str(q)
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


def validate_k8s(cfg):
    section("Kubernetes manifests (deploy/k8s)")
    docs = load_k8s()
    for fn, d in docs:
        ok = isinstance(d, dict) and (d.get("apiVersion"), d.get("kind")) in KNOWN and d.get("metadata", {}).get("name")
        check(ok, f"k8s/{fn}: {d.get('apiVersion')} {d.get('kind')} {d.get('metadata', {}).get('name')} is a known kind with a name")
    by_kind = {}
    for fn, d in docs:
        by_kind.setdefault(d.get("kind"), []).append((fn, d))

    deps = by_kind.get("Deployment", [])
    if not check(len(deps) == 1, "exactly one Deployment", f"{len(deps)}"):
        return None
    dfn, dep = deps[0]
    dname = dep["metadata"]["name"]
    spec = dep.get("spec", {})
    tmpl = spec.get("template", {})
    tlabels = tmpl.get("metadata", {}).get("labels", {})
    pod = tmpl.get("spec", {})
    check(labels_match(spec.get("selector", {}).get("matchLabels", {}), tlabels),
          "Deployment selector matches its pod template labels")
    cs = pod.get("containers", [])
    if not check(len(cs) >= 1, "Deployment has a container"):
        return None
    c = cs[0]
    ports = container_ports(c)
    check(ports.get("grpc") == cfg["port"], f"container port 'grpc' is the daemon's gRPC port {cfg['port']}", f"{ports}")
    check(ports.get("metrics") == cfg["metricsPort"], f"container port 'metrics' is the daemon's metrics port {cfg['metricsPort']}", f"{ports}")
    check(ports.get("http") == cfg["httpPort"], f"container port 'http' is the daemon's HTTP port {cfg['httpPort']}", f"{ports}")
    args = [str(a) for a in (c.get("command", []) + c.get("args", []))]

    def flagval(argv, name):
        for i, t in enumerate(argv):
            if t == name and i + 1 < len(argv):
                return argv[i + 1]
            if t.startswith(name + "="):
                return t.split("=", 1)[1]
        return None

    for fl, key in (("--port", "grpc"), ("--metrics-port", "metrics"), ("--http-port", "http")):
        v = flagval(args, fl)
        if v is not None:
            check(v.lstrip("-").isdigit() and int(v) == ports.get(key), f"args {fl}={v} equals container port '{key}'")
    for pname, path in (("readinessProbe", "/v2/health/ready"), ("livenessProbe", "/v2/health/live")):
        p = c.get(pname) or {}
        g = p.get("httpGet")
        check(isinstance(g, dict) and g.get("port") in (ports.get("http"), "http") and g.get("path") == path,
              f"{pname} is an HTTP probe of {path} on the HTTP container port {ports.get('http')}", f"{p}")
    sp = c.get("startupProbe")
    if sp:
        check((sp.get("grpc") or {}).get("port") == ports.get("grpc"), "startupProbe is a gRPC probe on the gRPC port")

    psc = pod.get("securityContext", {})
    csc = c.get("securityContext", {})
    non_root = (csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True)
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    check(non_root and uid not in (None, 0), f"Deployment runs non-root (runAsNonRoot, runAsUser {uid})")
    check(csc.get("readOnlyRootFilesystem") is True, "Deployment container has a read-only root file system")
    check(csc.get("allowPrivilegeEscalation") is False, "Deployment container disallows privilege escalation")
    check("ALL" in (csc.get("capabilities", {}).get("drop") or []), "Deployment container drops all capabilities")

    pre = (c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")) or []
    pre_s = 0
    if len(pre) >= 2 and pre[0].endswith("sleep"):
        pre_s = float(pre[1])
    tg = pod.get("terminationGracePeriodSeconds", 30)
    check(tg >= cfg["shutdownGraceSeconds"] + pre_s,
          f"terminationGracePeriodSeconds {tg} >= shutdown grace {cfg['shutdownGraceSeconds']:g} s + preStop {pre_s:g} s")
    res = c.get("resources", {})
    check(all(k in res.get("requests", {}) for k in ("cpu", "memory")) and all(k in res.get("limits", {}) for k in ("cpu", "memory")),
          "Deployment container sets cpu and memory requests and limits")
    env = {e.get("name"): e for e in c.get("env", [])}
    threads = [a.split("=", 1)[1] for a in c.get("args", []) if str(a).startswith("--threads=")]
    lim = res.get("limits", {}).get("cpu")
    if check(len(threads) == 1, "Deployment passes --threads (the container sees the node's cores, not its limit)") and lim is not None:
        check(threads[0].isdigit() and int(threads[0]) == max(1, int(cpu_cores(lim))),
              f"--threads={threads[0]} equals the CPU limit {lim}")
    check("OPENBLAS_NUM_THREADS" not in env, "Deployment leaves OPENBLAS_NUM_THREADS to the daemon (--threads sets every pool)")
    for tok in ("ONESTEP_TOKEN",):
        e = env.get(tok)
        if e is not None:
            check("valueFrom" in e and "secretKeyRef" in e["valueFrom"], f"{tok} comes from a Secret, not a literal")
    mounts = {m.get("mountPath"): m for m in c.get("volumeMounts", [])}
    vols = {v.get("name"): v for v in pod.get("volumes", [])}
    mm = mounts.get("/models")
    check(mm is not None and mm.get("name") in vols, "a volume is mounted on /models (the image's --repository)")
    if mm is not None:
        check(mm.get("readOnly") is True, "the models volume is mounted read-only")
    if csc.get("readOnlyRootFilesystem"):
        check("/tmp" in mounts, "a writable /tmp is mounted (read-only root file system)")

    # Services
    svcs = by_kind.get("Service", [])
    headless = [d for _, d in svcs if d.get("spec", {}).get("clusterIP") == "None"]
    normal = [d for _, d in svcs if d.get("spec", {}).get("clusterIP") != "None"]
    check(len(headless) == 1, "one headless Service (clusterIP: None)", f"{len(headless)}")
    check(len(normal) >= 1, "a normal Service", f"{len(normal)}")
    for s in headless + normal:
        sname = s["metadata"]["name"]
        sspec = s.get("spec", {})
        check(labels_match(sspec.get("selector", {}), tlabels), f"Service {sname} selects the Deployment's pods")
        for p in sspec.get("ports", []):
            tgt = resolve_target(p.get("targetPort", p.get("port")), ports)
            check(tgt is not None and tgt == p.get("port"),
                  f"Service {sname} port {p.get('name')} {p.get('port')} -> container port {tgt}")
    if headless:
        hp = {p.get("name"): p.get("port") for p in headless[0]["spec"].get("ports", [])}
        check(hp.get("grpc") == ports.get("grpc"), f"headless Service exposes gRPC {ports.get('grpc')}")
    if normal:
        np_ = {p.get("name"): p.get("port") for s in normal for p in s["spec"].get("ports", [])}
        check(np_.get("metrics") == ports.get("metrics"), f"normal Service exposes metrics {ports.get('metrics')}")

    # HPA
    hpas = by_kind.get("HorizontalPodAutoscaler", [])
    if check(len(hpas) >= 1, "an HPA"):
        h = hpas[0][1]
        ref = h.get("spec", {}).get("scaleTargetRef", {})
        check(ref.get("kind") == "Deployment" and ref.get("name") == dname and ref.get("apiVersion") == "apps/v1",
              f"HPA targets Deployment {dname}", f"{ref}")
        hs = h.get("spec", {})
        check(1 <= hs.get("minReplicas", 1) <= hs.get("maxReplicas", 0), "HPA 1 <= minReplicas <= maxReplicas")
        cpu = [m for m in hs.get("metrics", []) if m.get("type") == "Resource" and m.get("resource", {}).get("name") == "cpu"]
        check(bool(cpu), "HPA scales on CPU")

    for fn, pdb in by_kind.get("PodDisruptionBudget", []):
        check(labels_match(pdb.get("spec", {}).get("selector", {}).get("matchLabels", {}), tlabels),
              f"PodDisruptionBudget {pdb['metadata']['name']} selects the Deployment's pods")

    # Indexed Job
    jobs = by_kind.get("Job", [])
    if check(len(jobs) >= 1, "a generation Job"):
        j = jobs[0][1]
        js = j.get("spec", {})
        n = js.get("completions")
        check(js.get("completionMode") == "Indexed", "Job completionMode is Indexed")
        check(isinstance(n, int) and n >= 1, f"Job completions is a positive integer ({n})")
        check(isinstance(js.get("parallelism"), int) and 1 <= js["parallelism"] <= (n or 0),
              f"Job parallelism {js.get('parallelism')} in 1...completions")
        jpod = js.get("template", {}).get("spec", {})
        check(jpod.get("restartPolicy") in ("OnFailure", "Never"), "Job restartPolicy is OnFailure or Never")
        jc = (jpod.get("containers") or [{}])[0]
        jargs = [str(a) for a in (jc.get("command", []) + jc.get("args", []))]
        check("generate" in jargs, "Job runs `onestep generate`", f"{jargs}")
        shard = flagval(jargs, "--shard")
        m = re.fullmatch(r"\$\(JOB_COMPLETION_INDEX\)/(\d+)", shard or "")
        check(m is not None, "Job --shard is $(JOB_COMPLETION_INDEX)/N", f"{shard}")
        if m:
            check(int(m.group(1)) == n, f"Job shard count N={m.group(1)} equals completions={n}")
        jenv = {e.get("name") for e in jc.get("env", [])}
        check("JOB_COMPLETION_INDEX" in jenv, "Job container declares JOB_COMPLETION_INDEX (so $(...) expands)")
        for fl in ("--model", "--seeds", "--server", "--out"):
            check(flagval(jargs, fl) is not None, f"Job passes {fl}")
        check("--resume" in jargs, "Job passes --resume (a retried pod continues its shard instead of being refused)")
        seeds = flagval(jargs, "--seeds") or ""
        check(re.fullmatch(r"\d+-\d+", seeds) is not None and int(seeds.split("-")[0]) <= int(seeds.split("-")[1]),
              f"Job --seeds is a range A-B ({seeds})")
        server = flagval(jargs, "--server") or ""
        if headless:
            hname = headless[0]["metadata"]["name"]
            host, _, port = server.rpartition(":")
            check(host.split(".")[0] == hname and port.isdigit() and int(port) == ports.get("grpc"),
                  f"Job --server {server} is the headless Service {hname}:{ports.get('grpc')}")
        out = flagval(jargs, "--out") or ""
        jm = [mt.get("mountPath") for mt in jc.get("volumeMounts", [])]
        check(any(out == mp or out.startswith(mp.rstrip("/") + "/") for mp in jm), f"Job --out {out} is on a mounted volume")
        jpsc, jcsc = jpod.get("securityContext", {}), jc.get("securityContext", {})
        check(jcsc.get("runAsNonRoot", jpsc.get("runAsNonRoot")) is True and jcsc.get("runAsUser", jpsc.get("runAsUser")) not in (None, 0),
              "Job runs non-root")
        check(jc.get("image") == c.get("image"), "Job uses the Deployment's image")
    return uid


# ---------------------------------------------------------------------------------------------
# systemd

def parse_unit(text):
    sections, cur, buf = {}, None, ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not buf and (not line.strip() or line.lstrip()[0] in "#;"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        line, buf = buf + line, ""
        m = re.fullmatch(r"\s*\[(\w+)\]\s*", line)
        if m:
            cur = sections.setdefault(m.group(1), {})
            continue
        k, _, v = line.partition("=")
        if cur is not None:
            cur.setdefault(k.strip(), []).append(v.strip())
    return sections


def validate_systemd(cfg, use_tools):
    section("systemd unit (deploy/systemd/onestep.service)")
    path = os.path.join(DEPLOY, "systemd", "onestep.service")
    if not check(os.path.isfile(path), "unit file exists"):
        return
    text = read(path)
    u = parse_unit(text)
    check(all(s in u for s in ("Unit", "Service", "Install")), "has [Unit], [Service], [Install]")
    s = u.get("Service", {})

    def last(k):
        return (s.get(k) or [None])[-1]

    yes = ("yes", "true", "1", "on")
    check(last("DynamicUser") in yes or (last("User") not in (None, "root", "0")),
          "runs as a dynamic or dedicated non-root user")
    check(last("ProtectSystem") == "strict", "ProtectSystem=strict")
    check(last("NoNewPrivileges") in yes, "NoNewPrivileges=yes")
    check(last("Restart") == "on-failure", "Restart=on-failure")
    check(last("KillSignal") in ("SIGTERM", "TERM", "15"), "KillSignal=SIGTERM (the daemon drains on it)")
    ts = last("TimeoutStopSec")
    tsv = float(re.sub(r"s$", "", ts)) if ts and re.fullmatch(r"[0-9.]+s?", ts) else 0
    check(tsv >= cfg["shutdownGraceSeconds"], f"TimeoutStopSec={ts} >= shutdown grace {cfg['shutdownGraceSeconds']:g} s")
    check(bool(s.get("EnvironmentFile")), "EnvironmentFile for the tokens")
    envs = " ".join(s.get("Environment", []))
    check("OPENBLAS_NUM_THREADS=" not in envs, "Environment leaves OPENBLAS_NUM_THREADS to the daemon (it uses every core, or --threads)")
    for k in ("ProtectHome", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules",
              "ProtectControlGroups", "RestrictNamespaces", "LockPersonality", "RestrictSUIDSGID"):
        check(last(k) in yes, f"{k}=yes")
    check(last("CapabilityBoundingSet") == "", "CapabilityBoundingSet= (empty: no capabilities)")
    check(bool(s.get("SystemCallFilter")), "SystemCallFilter set")
    check(bool(s.get("RestrictAddressFamilies")), "RestrictAddressFamilies set")
    execs = s.get("ExecStart") or [""]
    argv = shlex.split(execs[-1])
    check(len(argv) >= 2 and argv[0].startswith("/") and argv[1] == "serve", f"ExecStart runs `onestep serve` ({argv[:2]})")

    def flag(name):
        for i, t in enumerate(argv):
            if t == name and i + 1 < len(argv):
                return argv[i + 1]
            if t.startswith(name + "="):
                return t.split("=", 1)[1]
        return None

    check(flag("--port") == str(cfg["port"]), f"ExecStart --port {flag('--port')} is the daemon's gRPC port {cfg['port']}")
    mp = flag("--metrics-port")
    check(mp == str(cfg["metricsPort"]), f"ExecStart --metrics-port {mp} is the metrics port {cfg['metricsPort']}")
    hp = flag("--http-port")
    check(hp == str(cfg["httpPort"]), f"ExecStart --http-port {hp} is the HTTP port {cfg['httpPort']}")
    check(not any(t == "--metrics-port" and i + 1 < len(argv) and argv[i + 1].startswith("-") for i, t in enumerate(argv)),
          "a negative --metrics-port is written --metrics-port=-1 (the parser reads '-1' as a flag)")
    repo = flag("--repository")
    rop = " ".join(s.get("ReadOnlyPaths", [])).split()
    check(repo is not None and any(p.lstrip("-") == repo for p in rop), f"ReadOnlyPaths covers the repository {repo}")
    check(bool(u.get("Install", {}).get("WantedBy")), "[Install] WantedBy")

    if not use_tools:
        return
    sa = shutil.which("systemd-analyze")
    if not sa:
        note("systemd-analyze not installed: verify and security checks skipped")
        return
    with tempfile.TemporaryDirectory() as td:
        # verify wants ExecStart's binary to exist: point it at /bin/true in a copy.
        unit = os.path.join(td, "onestep.service")
        with open(unit, "w") as f:
            f.write(text.replace(argv[0], "/bin/true"))
        r = subprocess.run([sa, "verify", unit], capture_output=True, text=True, timeout=60)
        msg = (r.stdout + r.stderr).strip()
        check(r.returncode == 0 and not msg, "systemd-analyze verify", msg[:400])
        r = subprocess.run([sa, "security", "--offline=true", "--no-pager", unit], capture_output=True, text=True, timeout=60)
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
        if m:
            check(float(m.group(1)) <= 2.5, f"systemd-analyze security --offline: exposure {m.group(1)} (<= 2.5)")
        else:
            note(f"systemd-analyze security --offline unavailable here ({(r.stderr or r.stdout).strip()[:120]})")


# ---------------------------------------------------------------------------------------------
# nginx

NGINX_NEXT_UPSTREAM = {"error", "timeout", "invalid_header", "http_500", "http_502", "http_503", "http_504",
                       "http_403", "http_404", "http_429", "non_idempotent", "off"}


def seconds(v):
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", v or "")
    if not m:
        return None
    n = int(m.group(1))
    return n * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def size_bytes(v):
    m = re.fullmatch(r"(\d+)([kKmMgG])?", v or "")
    if not m:
        return None
    return int(m.group(1)) * {None: 1, "k": 1024, "m": 1 << 20, "g": 1 << 30}[(m.group(2) or "").lower() or None]


def render_nginx(text, upstreams, log_dir):
    m = re.search(r"upstream\s+onestep_grpc\s*\{(.*?)\n\}", text, re.S)
    body = m.group(1)
    params = re.findall(r"^\s*server\s+\S+(.*);", body, re.M)[0]
    body2 = re.sub(r"^\s*server\s+\S+.*;\n", "", body, flags=re.M)
    body2 = "".join(f"\n    server {u}{params};" for u in upstreams) + body2
    text = text[:m.start(1)] + body2 + text[m.end(1):]
    return re.sub(r"access_log\s+\S+", f"access_log {log_dir}/access.log", text)


def validate_nginx(cfg, use_tools):
    section("nginx (deploy/nginx/onestep-grpc.conf)")
    path = os.path.join(DEPLOY, "nginx", "onestep-grpc.conf")
    if not check(os.path.isfile(path), "config exists"):
        return
    raw = read(path)
    text = "\n".join(l.split("#", 1)[0] for l in raw.splitlines())  # comments out

    def directives(name, scope=text):
        return [v.strip() for v in re.findall(rf"(?:^|[;{{}}\s]){name}\s+([^;]*);", scope)]

    um = re.search(r"upstream\s+(\S+)\s*\{(.*?)\}", text, re.S)
    if not check(um is not None, "an upstream block"):
        return
    uname, ubody = um.group(1), um.group(2)
    servers = directives("server", ubody)
    check(len(servers) >= 2, f"upstream {uname} lists several daemons ({len(servers)})")
    check(bool(directives("keepalive", ubody)), "upstream keeps connections alive (keepalive)")
    bal = [b for b in ("least_conn", "random", "hash", "ip_hash") if re.search(rf"\b{b}\b", ubody)]
    note(f"balancing: {bal[0] if bal else 'round robin'}")
    for sv in servers:
        check("max_fails=" in sv and "fail_timeout=" in sv, f"upstream server {sv.split()[0]} has max_fails/fail_timeout (passive health)")
    gp = directives("grpc_pass")
    check(any(g in (f"grpc://{uname}", f"grpcs://{uname}") for g in gp), f"grpc_pass grpc://{uname}", f"{gp}")
    check(any(re.search(r"\bhttp2\b", l) for l in directives("listen")) or bool(re.search(r"^\s*http2\s+on;", text, re.M)),
          "listens with HTTP/2")
    for d in ("grpc_read_timeout", "grpc_send_timeout"):
        v = directives(d)
        check(bool(v) and (seconds(v[-1]) or 0) >= 300, f"{d} >= 300 s for streaming ({v[-1] if v else 'default 60s'})")
    cmb = directives("client_max_body_size")
    if check(bool(cmb), "client_max_body_size set"):
        b = size_bytes(cmb[-1])
        check(b == 0 or (b or 0) >= cfg["maxRequestBytes"],
              f"client_max_body_size {cmb[-1]} >= the daemon's max_request_bytes {cfg['maxRequestBytes']}")
    nu = directives("grpc_next_upstream")
    if check(bool(nu), "grpc_next_upstream set (passive failover)"):
        vals = set(nu[-1].split())
        check({"error", "timeout"} <= vals, "grpc_next_upstream includes error and timeout")
        check(vals <= NGINX_NEXT_UPSTREAM, "grpc_next_upstream values are ones nginx accepts",
              f"unknown: {sorted(vals - NGINX_NEXT_UPSTREAM)}")

    if not use_tools:
        return
    ng = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
    if not ng:
        note("nginx not installed: `nginx -t` skipped (apt-get install nginx-light)")
        return
    with tempfile.TemporaryDirectory() as td:
        conf = os.path.join(td, "onestep-grpc.conf")
        with open(conf, "w") as f:
            f.write(render_nginx(raw, ["127.0.0.1:18001", "127.0.0.1:18002"], td))
        main = os.path.join(td, "nginx.conf")
        with open(main, "w") as f:
            f.write(f"pid {td}/nginx.pid;\nerror_log {td}/error.log;\nevents {{}}\nhttp {{\n"
                    f"  client_body_temp_path {td}/body; proxy_temp_path {td}/proxy; fastcgi_temp_path {td}/fcgi;\n"
                    f"  uwsgi_temp_path {td}/uwsgi; scgi_temp_path {td}/scgi;\n  include {conf};\n}}\n")
        r = subprocess.run([ng, "-t", "-p", td, "-c", main, "-e", f"{td}/error.log"], capture_output=True, text=True, timeout=60)
        out = (r.stdout + r.stderr).strip()
        check(r.returncode == 0 and "test is successful" in out, "nginx -t accepts the config (placeholder upstreams)",
              out.replace("\n", " | ")[:400])


# ---------------------------------------------------------------------------------------------
# The binary's shared libraries vs the runtime image's packages.

def validate_binary(binary):
    section(f"runtime libraries of {binary}")
    if not (shutil.which("ldd") and shutil.which("dpkg") and shutil.which("apt-cache")):
        note("ldd, dpkg or apt-cache missing: skipped")
        return
    r = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=60)
    if not check(r.returncode == 0, "ldd reads the binary", r.stderr.strip()[:200]):
        return
    swift_libs, needed = [], {}
    for line in r.stdout.splitlines():
        m = re.match(r"\s*(\S+)\s+=>\s+(\S+)", line)
        if not m:
            continue
        soname, p = m.groups()
        if p == "not":
            check(False, f"{soname} resolves")
            continue
        if "/swift/" in p or soname.startswith(("libswift", "libFoundation", "lib_Foundation", "libdispatch", "libBlocksRuntime")):
            swift_libs.append(soname)
            continue
        real = os.path.realpath(p)
        q = subprocess.run(["dpkg", "-S", real], capture_output=True, text=True)
        if q.returncode != 0:
            q = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
        pkg = q.stdout.split(":")[0].strip() if q.returncode == 0 else None
        needed[soname] = pkg
    note(f"Swift runtime libraries ({len(swift_libs)}) are linked statically by the Dockerfile (--static-swift-stdlib)")
    text = read(os.path.join(DEPLOY, "Dockerfile"))
    stages = re.split(r"^FROM\s", text, flags=re.M)
    runtime = set()
    for op, a, _ in parse_dockerfile("FROM " + stages[-1]):
        if op == "RUN":
            runtime |= set(apt_packages(a))
    q = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
                        "--no-breaks", "--no-replaces", "--no-enhances", "--installed"] + sorted(runtime),
                       capture_output=True, text=True, timeout=120)
    closure = set(runtime) | {l.strip() for l in q.stdout.splitlines() if l and not l.startswith(" ")}
    closure |= {re.sub(r"^\s*(Pre)?Depends:\s*<?([^>:\s]+)>?.*", r"\2", l) for l in q.stdout.splitlines() if "Depends:" in l}
    base = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}  # in debian:bookworm-slim
    for soname, pkg in sorted(needed.items()):
        check(pkg is not None and (pkg in closure or pkg in base),
              f"{soname} comes from {pkg}, provided by the runtime packages or the slim base")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default=os.environ.get("ONESTEP_BIN"),
                    help="check this onestep binary's shared libraries against the runtime image (default $ONESTEP_BIN)")
    ap.add_argument("--no-tools", action="store_true", help="only parse: do not run nginx -t or systemd-analyze")
    a = ap.parse_args()
    cfg = server_defaults()
    print(f"validate: daemon defaults from ServerConfig.swift: gRPC {cfg['port']}, metrics {cfg['metricsPort']}, "
          f"shutdown grace {cfg['shutdownGraceSeconds']:g} s, max request {cfg['maxRequestBytes']} bytes")
    uid = validate_k8s(cfg)
    validate_dockerfile(cfg, uid)
    validate_systemd(cfg, not a.no_tools)
    validate_nginx(cfg, not a.no_tools)
    if a.binary:
        if os.path.isfile(a.binary):
            validate_binary(a.binary)
        else:
            check(False, f"--binary {a.binary} exists")
    print(f"validate: {PASSED} passed, {FAILED} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
