#!/usr/bin/env bash
# Live tests of `onestep generate` with the real binary and the bundled model:
#   - an in-process reference run;
#   - kill -9 of the generator mid-run, then --resume: the folder equals the reference;
#   - shards 0/3, 1/3, 2/3 into one folder: files and manifests together equal the reference;
#   - two daemons behind nginx (the shipped config), one killed (SIGKILL) mid-run: the run
#     completes through the other and equals the in-process reference byte for byte;
#   - bad input: empty or malformed seed range, a folder holding another model's run, an
#     unwritable folder, a full disk (a 256 KiB tmpfs when mounting is allowed, else a file-size
#     limit): each exits non-zero with a clear message and leaves no half-written file.
#
#   bash deploy/test_generate.sh [BINARY]          # BINARY: default $ONESTEP_BIN, else .build/release/onestep
#   ONESTEP_GENERATE_BENCH=1 bash deploy/test_generate.sh BINARY   # also samples/s: in process, 1 and 2 daemons via nginx
#
# Prints "test_generate: N passed, M failed" and exits non-zero on any failure.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${1:-${ONESTEP_BIN:-$ROOT/.build/release/onestep}}"
REPO="${ONESTEP_REPOSITORY:-$ROOT/models/serve}"
MODEL="${ONESTEP_MODEL:-mnist-onestep}"
OTHER_MODEL="${ONESTEP_OTHER_MODEL:-mnist-teacher}"
CONF_SRC="$ROOT/deploy/nginx/onestep-grpc.conf"
START_TIMEOUT="${ONESTEP_START_TIMEOUT:-180}"
N="${ONESTEP_GENERATE_N:-600}"     # samples per run (seeds 0..N-1)
CHUNK=50
BENCH="${ONESTEP_GENERATE_BENCH:-0}"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"

TEST=test_generate
# shellcheck source=deploy/testlib.sh
source "$ROOT/deploy/testlib.sh"

[ -x "$BIN" ] || die "binary '$BIN' not found or not executable (pass it as the first argument)"
[ -f "$REPO/$MODEL/1/model.safetensors" ] || die "model repository '$REPO' has no $MODEL/1/model.safetensors"
need_nginx
testlib_init
MOUNTED=""
cleanup_hook() { if [ -n "$MOUNTED" ]; then umount "$MOUNTED" 2>/dev/null; fi; }

SEEDS="0-$((N - 1))"
gen() {  # out [extra args...]   (in process unless --server is given)
    local out="$1"; shift
    "$BIN" generate --model "$MODEL" --seeds "$SEEDS" --chunk "$CHUNK" --format png --threads 1 --out "$out" "$@" \
        >>"$TMP/generate.log" 2>&1
}
# In the background, with $! the generator's own pid (exec replaces the subshell), so that kill -9
# reaches the generator and not a subshell that would leave it running.
gen_bg() {  # out [extra args...]
    local out="$1"; shift
    ( exec "$BIN" generate --model "$MODEL" --seeds "$SEEDS" --chunk "$CHUNK" --format png --threads 1 --out "$out" "$@" \
        >>"$TMP/generate.log" 2>&1 ) &
}
lines() { cat "$1"/manifest*.jsonl 2>/dev/null | wc -l; }
# Same sample files and the same manifest lines (generate.json differs between sharded and whole runs).
same_run() {  # a b
    diff -r -q "$1/png" "$2/png" >/dev/null || return 1
    [ "$(cat "$1"/manifest*.jsonl | sort | sha256sum)" = "$(cat "$2"/manifest*.jsonl | sort | sha256sum)" ]
}
# Every file under png/ is in the manifest with its hash, nothing else is there, no temporaries.
consistent() {  # dir
    python3 - "$1" <<'PY'
import hashlib, json, os, sys, glob
d = sys.argv[1]
listed = {}
for m in glob.glob(os.path.join(d, "manifest*.jsonl")):
    for line in open(m):
        if line.strip():
            r = json.loads(line); listed[r["file"]] = r["sha256"]
found = set()
for root, _, files in os.walk(d):
    for f in files:
        rel = os.path.relpath(os.path.join(root, f), d)
        if ".tmp-" in rel: sys.exit(f"temporary file left: {rel}")
        if rel.startswith("png/"): found.add(rel)
if found != set(listed): sys.exit(f"{len(found - set(listed))} files not in the manifest, {len(set(listed) - found)} listed but missing")
for rel, sha in listed.items():
    if hashlib.sha256(open(os.path.join(d, rel), "rb").read()).hexdigest() != sha: sys.exit(f"{rel}: hash differs from the manifest")
print(len(listed))
PY
}
wait_lines() {  # dir count pid: until the manifests hold >= count lines (or the pid exits)
    local i
    for ((i = 0; i < 6000; i++)); do
        [ "$(lines "$1")" -ge "$2" ] && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.02
    done
    return 1
}

echo "checks ($N samples of $MODEL, chunks of $CHUNK, png):"
# ---- reference --------------------------------------------------------------------------------
t0=$(date +%s.%N)
if gen "$TMP/ref" && [ "$(lines "$TMP/ref")" = "$N" ] && [ "$(find "$TMP/ref/png" -name '*.png' | wc -l)" = "$N" ]; then
    ok "in-process run: $N PNGs and $N manifest lines ($(python3 -c "print(round($(date +%s.%N)-$t0,1))") s)"
else
    die "the in-process reference run failed (see generate.log)"
fi
PNGSIZE=$(du -sb "$TMP/ref/png" | cut -f1)

# ---- kill -9 mid-run, then --resume -----------------------------------------------------------
gen_bg "$TMP/killed"; GP=$!
if wait_lines "$TMP/killed" $((N / 6)) "$GP"; then
    kill -KILL "$GP" 2>/dev/null; wait "$GP" 2>/dev/null
    kill -0 "$GP" 2>/dev/null && bad "the generator survived kill -9"
    done_at_kill=$(lines "$TMP/killed")
    if [ "$done_at_kill" -lt "$N" ]; then ok "generator killed (SIGKILL) mid-run with $done_at_kill/$N samples recorded"
    else bad "the generator finished before the kill ($done_at_kill lines); nothing was interrupted"; fi
    if gen "$TMP/killed"; then bad "a second run into the same folder without --resume was accepted"
    else grep -q -- "--resume" "$TMP/generate.log" && ok "a rerun without --resume is refused and says --resume" || bad "the refusal does not mention --resume"; fi
    if gen "$TMP/killed" --resume; then
        kept=$(grep -o '[0-9]* already there' "$TMP/generate.log" | tail -n 1 | cut -d' ' -f1)
        if [ "${kept:-0}" -gt 0 ] && [ "$kept" -le "$done_at_kill" ] && [ $((kept % CHUNK)) = 0 ]; then
            ok "--resume kept the $kept samples of whole chunks recorded before the kill and made the rest"
        else
            bad "--resume kept ${kept:-no} samples (recorded at the kill: $done_at_kill, chunks of $CHUNK)"
        fi
    fi
    if same_run "$TMP/killed" "$TMP/ref"; then
        cmp -s "$TMP/killed/manifest.jsonl" "$TMP/ref/manifest.jsonl" && cmp -s "$TMP/killed/generate.json" "$TMP/ref/generate.json" \
            && ok "--resume after kill -9 completes, byte-identical to the uninterrupted run (files, manifest, spec)" \
            || bad "--resume after kill -9: the manifest or spec differs"
    else
        bad "--resume after kill -9 differs from the uninterrupted run (or the resume failed)"
    fi
else
    wait "$GP" 2>/dev/null; bad "the generator did not get going (see generate.log)"
fi

# ---- shards -----------------------------------------------------------------------------------
s_ok=1
for i in 0 1 2; do gen "$TMP/sharded" --shard "$i/3" || s_ok=0; done
if [ "$s_ok" = 1 ] && same_run "$TMP/sharded" "$TMP/ref" && [ -f "$TMP/sharded/manifest-2-of-3.jsonl" ] && [ ! -e "$TMP/sharded/manifest.jsonl" ]; then
    ok "shards 0/3, 1/3, 2/3 together equal the unsharded run byte for byte (manifests: union of the three)"
else
    bad "shards 0/3, 1/3, 2/3 do not add up to the unsharded run"
fi

# ---- two daemons behind nginx, one killed mid-run ---------------------------------------------
printf '{"models": ["%s"], "log_format": "json"}\n' "$MODEL" >"$TMP/serve.json"
start_daemon a; PID_A=$DAEMON_PID
start_daemon b; PID_B=$DAEMON_PID
wait_daemon a "$PID_A"; wait_daemon b "$PID_B"
PORT_A=$(grpc_port "$TMP/a.port"); PORT_B=$(grpc_port "$TMP/b.port")
start_nginx "127.0.0.1:$PORT_A" "127.0.0.1:$PORT_B"
log "daemons a=:$PORT_A b=:$PORT_B behind nginx :$NGX_PORT"
gen_bg "$TMP/via" --server "127.0.0.1:$NGX_PORT" --batch 25 --in-flight 2; GP=$!
if wait_lines "$TMP/via" $((N / 6)) "$GP"; then
    kill -KILL "$PID_A" 2>/dev/null
    at=$(lines "$TMP/via")
    if wait "$GP"; then
        [ "$at" -lt "$N" ] && ok "daemon a killed (SIGKILL) with $at/$N samples done; the run completed through nginx and daemon b" \
            || bad "the run was already complete when daemon a was killed"
        same_run "$TMP/via" "$TMP/ref" && ok "through nginx and two daemons == in process, byte for byte" \
            || bad "the run through nginx differs from the in-process run"
        grep -q "up=127.0.0.1:$PORT_B" "$TMP/nginx-access.log" && grep -q "up=127.0.0.1:$PORT_A" "$TMP/nginx-access.log" \
            && ok "nginx spread the run's calls over both daemons before the kill" || bad "nginx did not use both daemons"
    else
        bad "the run through nginx failed after daemon a was killed (see generate.log)"
    fi
else
    wait "$GP" 2>/dev/null; bad "the run through nginx did not get going (see generate.log)"
fi

# ---- bad input ----------------------------------------------------------------------------------
expect_fail() {  # description expected-text command...
    local what="$1" text="$2"; shift 2
    local out; out="$("$@" 2>&1)"; local rc=$?
    if [ "$rc" != 0 ] && grep -q -- "$text" <<<"$out"; then ok "$what: exit $rc, '$(grep -m1 -o -- "$text.*" <<<"$out" | cut -c1-90)'"
    else bad "$what: exit $rc, expected a message with '$text', got: $(tail -n 2 <<<"$out")"; fi
}
expect_fail "empty seed range 5-1" "is empty" "$BIN" generate --model "$MODEL" --seeds 5-1 --out "$TMP/bad1"
expect_fail "malformed seed range" "not a non-negative integer" "$BIN" generate --model "$MODEL" --seeds 0-x --out "$TMP/bad1"
[ -e "$TMP/bad1" ] && bad "a refused seed range created the output folder" || ok "refused seed ranges create nothing"
before=$(find "$TMP/ref" -type f -newer "$TMP/ref/generate.json" | wc -l; sha256sum "$TMP/ref/manifest.jsonl")
expect_fail "a folder holding another model's run" "holds samples of model '$MODEL'" \
    "$BIN" generate --model "$OTHER_MODEL" --seeds "$SEEDS" --out "$TMP/ref" --resume --threads 1
[ "$before" = "$(find "$TMP/ref" -type f -newer "$TMP/ref/generate.json" | wc -l; sha256sum "$TMP/ref/manifest.jsonl")" ] \
    && ok "the other run's folder is untouched" || bad "the other run's folder changed"
expect_fail "an unwritable folder" "cannot create the output folder" "$BIN" generate --model "$MODEL" --seeds 0-9 --out /proc/onestep-gen
: >"$TMP/plainfile"
expect_fail "a folder below a file" "cannot create the output folder" "$BIN" generate --model "$MODEL" --seeds 0-9 --out "$TMP/plainfile/out"

mkdir -p "$TMP/tiny"
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=256k tmpfs "$TMP/tiny" 2>/dev/null; then
    MOUNTED="$TMP/tiny"
    expect_fail "a full disk (256 KiB tmpfs for ~$((PNGSIZE / 1024)) KiB of PNGs, a 4 KiB block each)" "No space left on device" \
        "$BIN" generate --model "$MODEL" --seeds "$SEEDS" --chunk 10 --out "$TMP/tiny/run" --threads 1
    kind="tmpfs"
else
    # No mount here: a file-size limit (SIGXFSZ ignored, so writes fail with EFBIG) plays the full disk.
    expect_fail "a file-size limit (ulimit -f 8)" "File too large" \
        bash -c 'trap "" XFSZ; ulimit -f 8; exec "$@"' _ "$BIN" generate --model "$MODEL" --seeds "$SEEDS" --chunk 10 --out "$TMP/tiny/run" --threads 1
    kind="ulimit"
fi
if n=$(consistent "$TMP/tiny/run" 2>&1); then
    ok "after the full disk ($kind): $n complete samples, each in the manifest with its hash; no partial or temporary file"
else
    bad "after the full disk ($kind): $n"
fi
if [ -n "$MOUNTED" ]; then
    umount "$MOUNTED"; MOUNTED=""
fi

# ---- optional: samples/s ------------------------------------------------------------------------
if [ "$BENCH" = 1 ]; then
    echo "bench ($N samples, png, OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS per process; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)):"
    rate() { python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print("%.0f samples/s (%.2f s)" % (s["samples_per_second"], s["seconds"]))' "$1/summary.json"; }
    start_daemon c; PID_C=$DAEMON_PID; wait_daemon c "$PID_C"; PORT_C=$(grpc_port "$TMP/c.port")
    for round in 1 2; do
        rm -rf "$TMP"/b_*
        gen "$TMP/b_local1" && echo "  in process, 1 thread:        $(rate "$TMP/b_local1")"
        gen "$TMP/b_local2" --threads 2 && echo "  in process, 2 threads:       $(rate "$TMP/b_local2")"
        stop_nginx; start_nginx "127.0.0.1:$PORT_B"
        gen "$TMP/b_one" --server "127.0.0.1:$NGX_PORT" --batch 50 --in-flight 2 && echo "  1 daemon behind nginx:       $(rate "$TMP/b_one")"
        stop_nginx; start_nginx "127.0.0.1:$PORT_B" "127.0.0.1:$PORT_C"
        gen "$TMP/b_two" --server "127.0.0.1:$NGX_PORT" --batch 50 --in-flight 4 && echo "  2 daemons behind nginx:      $(rate "$TMP/b_two")"
        gen "$TMP/b_rr" --server "127.0.0.1:$PORT_B" --server "127.0.0.1:$PORT_C" --batch 50 --in-flight 4 \
            && echo "  2 daemons, client round robin: $(rate "$TMP/b_rr")"
    done
fi
exit 0
