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
# `loadtest make-bench-model`: the cost per sample of a real one-step generator of that shape.
set -euo pipefail
BIN=${1:-.build/release/onestep}
BATCH=${BATCH:-64}; COUNT=${COUNT:-8}; CONCURRENCY=${CONCURRENCY:-16}; DURATION=${DURATION:-10}; WARMUP=${WARMUP:-2}
MODEL_CHANNELS=${MODEL_CHANNELS:-32,64,64}
work=$(mktemp -d)
daemon=""
cleanup() { [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$BIN" loadtest make-bench-model --repository "$work/models" --name bench --channels "$MODEL_CHANNELS" >/dev/null
common=(--model bench --count "$COUNT" --duration "$DURATION" --warmup "$WARMUP" --json)
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

inproc=$("$BIN" loadtest --in-process "$work/models" --max-batch-size "$BATCH" --mode closed --concurrency "$CONCURRENCY" "${common[@]}")

"$BIN" serve --repository "$work/models" --port 0 --metrics-port=-1 --port-file "$work/ports.json" \
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
echo "model: random-weight U-Net generator, channels $MODEL_CHANNELS; max batch $BATCH; $COUNT samples/request"
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
