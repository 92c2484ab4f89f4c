#!/usr/bin/env bash
# Samples/s of the serving path over gRPC on loopback vs the same batcher and engine in-process
# (no network), at saturation, for the same model and batch size; then latency percentiles with an
# open-loop load at 10/50/90% of the gRPC saturation rate. Prints a Markdown table.
#
#   clients/bench/serve_bench.sh [BIN]      BIN: `onestep` (default .build/release/onestep) or the dev `onestep-client`
#
# Knobs (environment): MODEL_CHANNELS (U-Net channels, default the MNIST teacher's 32,64,64),
# BATCH (max batch size, 64), COUNT (samples per request, 8), CONCURRENCY (closed loop, 16),
# DURATION (s per point, 10), WARMUP (s, 2). The model is a random-weight U-Net generator written by
# `loadtest make-bench-model`: the cost per sample of a real one-step generator of that shape; or,
# with REPOSITORY=models/serve MODEL=mnist-onestep, a real model. SOAK=600 adds a soak: the daemon's
# resident memory every 10 s over SOAK seconds of open-loop load at 50% of saturation.
set -euo pipefail
BIN=${1:-.build/release/onestep}
BATCH=${BATCH:-64}; COUNT=${COUNT:-8}; CONCURRENCY=${CONCURRENCY:-16}; DURATION=${DURATION:-10}; WARMUP=${WARMUP:-2}
MODEL_CHANNELS=${MODEL_CHANNELS:-32,64,64}
SOAK=${SOAK:-0}
work=$(mktemp -d)
daemon=""
cleanup() { [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

if [ -n "${REPOSITORY:-}" ]; then
    repo="$REPOSITORY"; model="${MODEL:?MODEL names the model of REPOSITORY}"; what="model $model from $repo"
else
    repo="$work/models"; model=bench; what="random-weight U-Net generator, channels $MODEL_CHANNELS"
    "$BIN" loadtest make-bench-model --repository "$repo" --name bench --channels "$MODEL_CHANNELS" >/dev/null
fi
common=(--model "$model" --count "$COUNT" --duration "$DURATION" --warmup "$WARMUP" --json)
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

inproc=$("$BIN" loadtest --in-process "$repo" --max-batch-size "$BATCH" --mode closed --concurrency "$CONCURRENCY" "${common[@]}")

"$BIN" serve --repository "$repo" --port 0 --metrics-port=-1 --http-port=-1 --port-file "$work/ports.json" \
    --max-batch-size "$BATCH" --log-level warning >/dev/null 2>"$work/daemon.log" &
daemon=$!
for _ in $(seq 600); do [ -s "$work/ports.json" ] && break; kill -0 "$daemon" 2>/dev/null || { cat "$work/daemon.log"; exit 1; }; sleep 0.1; done
port=$(field 'd["grpc"]' <"$work/ports.json")
server=(--server "127.0.0.1:$port")
grpc=$("$BIN" loadtest "${server[@]}" --mode closed --concurrency "$CONCURRENCY" "${common[@]}")
sat=$(echo "$grpc" | field 'd["requests_per_s"]')

row() {  # name json
    echo "$2" | python3 -c "
import json,sys; d=json.load(sys.stdin); l=d['latency_ms']
f=sum(d['failures'].values()) if d['failures'] else 0
print(f\"| $1 | {d['samples_per_s']:.0f} | {d['requests_per_s']:.1f} | {l['p50']:.1f} | {l['p90']:.1f} | {l['p99']:.1f} | {l['max']:.1f} | {f} |\")"
}
echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%d)"
echo "model: $what; max batch $BATCH; $COUNT samples/request"
echo
echo "| load | samples/s | requests/s | p50 ms | p90 ms | p99 ms | max ms | failed |"
echo "|---|---|---|---|---|---|---|---|"
row "in-process engine, closed loop x$CONCURRENCY (saturation)" "$inproc"
row "gRPC loopback, closed loop x$CONCURRENCY (saturation)" "$grpc"
for pct in 10 50 90; do
    rate=$(python3 -c "print(max(0.1, $sat * $pct / 100))")
    out=$("$BIN" loadtest "${server[@]}" --mode open --rate "$rate" "${common[@]}")
    row "gRPC loopback, open loop $pct% of saturation ($(printf %.1f "$rate") req/s)" "$out"
done

if [ "$SOAK" -gt 0 ]; then
    rate=$(python3 -c "print(max(0.1, $sat * 0.5))")
    "$BIN" loadtest "${server[@]}" --mode open --rate "$rate" --model "$model" --count "$COUNT" --duration "$SOAK" --warmup 0 --json \
        >"$work/soak.json" &
    lt=$!
    t0=$(date +%s)
    while kill -0 "$lt" 2>/dev/null; do
        echo "$(( $(date +%s) - t0 )) $(awk '/VmRSS/ {print $2}' "/proc/$daemon/status")" >>"$work/rss.txt"; sleep 10
    done
    wait "$lt"
    echo
    python3 - "$work/rss.txt" "$work/soak.json" "$SOAK" "$rate" <<'PY'
import json, sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if len(l.split()) == 2]
d = json.load(open(sys.argv[2]))
warm = rows[1][1] if len(rows) > 1 else rows[0][1]   # after the first 10 s
last, peak = rows[-1][1], max(r[1] for r in rows)
f = sum(d["failures"].values()) if d["failures"] else 0
print(f"soak: {sys.argv[3]} s open loop at {float(sys.argv[4]):.1f} req/s (50% of saturation): {len(rows)} RSS readings; "
      f"{warm/1024:.1f} MiB at 10 s, {last/1024:.1f} MiB at the end, peak {peak/1024:.1f} MiB: growth {100*(last-warm)/warm:+.2f}% "
      f"(target < 5%); {d['samples_per_s']:.1f} samples/s, p99 {d['latency_ms']['p99']:.1f} ms, {f} failed")
PY
fi
