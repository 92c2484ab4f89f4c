#!/usr/bin/env bash
# Live test of deploy/nginx/onestep-grpc.conf on loopback: two `onestep serve` daemons behind nginx
# (grpc_pass), requests through nginx, byte-identical outputs, balancing, failover after one daemon
# is killed, and a clean bounded shutdown (SIGTERM: the daemon drains and exits 0).
#
#   bash deploy/test_nginx.sh [BINARY]        # BINARY: default $ONESTEP_BIN, else .build/release/onestep
#   ONESTEP_NGINX_BENCH=1 bash deploy/test_nginx.sh BINARY   # also time samples/s, 1 vs 2 daemons
#
# Needs nginx (Debian's nginx-light; installed here with apt-get when missing and we are root).
# Everything listens on 127.0.0.1 only; every process it starts is stopped on exit (trap).
# Prints "test_nginx: N passed, M failed" and exits non-zero on any failure.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${1:-${ONESTEP_BIN:-$ROOT/.build/release/onestep}}"
REPO="${ONESTEP_REPOSITORY:-$ROOT/models/serve}"
MODEL="${ONESTEP_MODEL:-mnist-onestep}"
CONF_SRC="$ROOT/deploy/nginx/onestep-grpc.conf"
START_TIMEOUT="${ONESTEP_START_TIMEOUT:-180}"   # seconds for a daemon to load, warm up and listen
BENCH="${ONESTEP_NGINX_BENCH:-0}"
# One BLAS thread per daemon unless told otherwise: two daemons on a 2-core box then use 2 cores.
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"

TEST=test_nginx
# shellcheck source=deploy/testlib.sh
source "$ROOT/deploy/testlib.sh"

# ---- prerequisites -------------------------------------------------------------------------------
[ -x "$BIN" ] || die "daemon binary '$BIN' not found or not executable (pass it as the first argument)"
[ -f "$REPO/$MODEL/1/model.safetensors" ] || die "model repository '$REPO' has no $MODEL/1/model.safetensors"
[ -f "$CONF_SRC" ] || die "missing $CONF_SRC"
need_nginx
testlib_init

# ---- two daemons ---------------------------------------------------------------------------------
# Only the model under test (the JSON config's "models" key); metrics off (--metrics-port=-1: with a
# space, the argument parser would read -1 as a flag).
printf '{"models": ["%s"], "log_format": "json"}\n' "$MODEL" >"$TMP/serve.json"
t0=$(date +%s.%N)
start_daemon a; PID_A=$DAEMON_PID
start_daemon b; PID_B=$DAEMON_PID
wait_daemon a "$PID_A"; wait_daemon b "$PID_B"
PORT_A=$(grpc_port "$TMP/a.port"); PORT_B=$(grpc_port "$TMP/b.port")
log "daemons a=127.0.0.1:$PORT_A (pid $PID_A) b=127.0.0.1:$PORT_B (pid $PID_B) listening after $(python3 -c "print(round($(date +%s.%N)-$t0,1))") s"

start_nginx "127.0.0.1:$PORT_A" "127.0.0.1:$PORT_B"
log "nginx $(nginx -v 2>&1 | sed 's/.*\///') on 127.0.0.1:$NGX_PORT (pid $NGINX_PID) -> a, b"

# One sample request; --attempts 1: any failover must come from nginx, not from client retries.
req() {  # server out [count] [seed] [attempts]
    "$BIN" request --server "$1" --model "$MODEL" --count "${3:-4}" --seed "${4:-1}" --format npy \
        --out "$2" --attempts "${5:-1}" --timeout 60 >>"$TMP/requests.log" 2>&1
}

# ---- checks --------------------------------------------------------------------------------------
echo "checks:"
if req "127.0.0.1:$PORT_A" "$TMP/direct_a.npy"; then ok "direct request to daemon a"; else bad "direct request to daemon a"; fi
if req "127.0.0.1:$PORT_B" "$TMP/direct_b.npy"; then ok "direct request to daemon b"; else bad "direct request to daemon b"; fi
if cmp -s "$TMP/direct_a.npy" "$TMP/direct_b.npy"; then ok "daemons a and b give the same bytes for seed 1"; else bad "daemons a and b differ for seed 1"; fi

n_ok=0; n_same=0; N=6
for i in $(seq 1 $N); do
    if req "127.0.0.1:$NGX_PORT" "$TMP/via_$i.npy"; then
        n_ok=$((n_ok + 1)); cmp -s "$TMP/via_$i.npy" "$TMP/direct_a.npy" && n_same=$((n_same + 1))
    fi
done
[ "$n_ok" = "$N" ] && ok "$N/$N requests through nginx succeeded" || bad "$n_ok/$N requests through nginx succeeded"
[ "$n_same" = "$N" ] && ok "all $N outputs through nginx byte-identical to the direct one ($(stat -c %s "$TMP/direct_a.npy") bytes)" \
    || bad "$n_same/$N outputs through nginx identical to the direct one"

# Balancing: both upstreams must appear in the access log (least_conn with sequential calls
# alternates between idle upstreams). Concurrent calls make it certain.
jobs_=(); wait_ok=0
for i in 1 2 3 4; do req "127.0.0.1:$NGX_PORT" "$TMP/conc_$i.npy" 4 $((10 + i)) & jobs_+=($!); done
for j in "${jobs_[@]}"; do wait "$j" || wait_ok=1; done
ups=$(grep -o "up=[0-9.:]*" "$TMP/nginx-access.log" | sort | uniq -c | tr -s ' ' | paste -sd, -)
if grep -q "up=127.0.0.1:$PORT_A" "$TMP/nginx-access.log" && grep -q "up=127.0.0.1:$PORT_B" "$TMP/nginx-access.log"; then
    ok "nginx spread calls over both daemons ($ups)"
else
    bad "nginx did not use both daemons ($ups)"
fi
[ "$wait_ok" = 0 ] && ok "4 concurrent requests through nginx succeeded" || bad "some of 4 concurrent requests through nginx failed"
# grpc=TRAILER/HEADER (log_format in the config): a success has grpc-status 0 in the trailers; an error answered at once
# (trailers-only response) has it in the headers.
if ! grep -v 'grpc=0/- ' "$TMP/nginx-access.log" | grep -q .; then
    ok "every call through nginx ended with grpc-status 0"
else
    bad "a call through nginx ended with another grpc-status: $(grep -o 'grpc=[0-9/-]*' "$TMP/nginx-access.log" | sort | uniq -c | tr -s ' ' | paste -sd, -)"
fi

# Optional: samples/s through nginx with 2 daemons, then with 1 (a alone), then a directly;
# 64 samples a request, 4 requests in flight.
bench() {  # label requests concurrency [server]
    local label="$1" n="$2" c="$3" server="${4:-127.0.0.1:$NGX_PORT}" s e i k j failed=0 js
    s=$(date +%s.%N)
    for ((i = 0; i < n; i += c)); do
        js=()
        for ((k = 0; k < c && i + k < n; k++)); do req "$server" "$TMP/bench_$k.npy" 64 $((1000 + i + k)) & js+=($!); done
        for j in "${js[@]}"; do wait "$j" || failed=$((failed + 1)); done
    done
    e=$(date +%s.%N)
    python3 -c "import sys; n,c,s,e=int(sys.argv[1]),int(sys.argv[2]),float(sys.argv[3]),float(sys.argv[4]); print(f'  bench {sys.argv[5]}: {n} requests x 64 samples, {c} concurrent: {e-s:.2f} s, {n*64/(e-s):.0f} samples/s')" "$n" "$c" "$s" "$e" "$label"
    [ "$failed" = 0 ] && ok "bench $label, $c concurrent: all $n requests succeeded" || bad "bench $label, $c concurrent: $failed/$n requests failed"
}
if [ "$BENCH" = 1 ]; then
    echo "bench (through nginx; OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS per daemon; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)):"
    for round in 1 2; do   # interleaved, so drift in the machine's load hits both alike
        bench "2 daemons" 12 4
        stop_nginx; start_nginx "127.0.0.1:$PORT_A"
        bench "1 daemon " 12 4
        bench "1 daemon, direct (no nginx)" 12 4 "127.0.0.1:$PORT_A"
        stop_nginx; start_nginx "127.0.0.1:$PORT_A" "127.0.0.1:$PORT_B"
    done
    echo "  (load after: $(cut -d' ' -f1-3 /proc/loadavg))"
fi

# Drain behind nginx: two long calls (512 samples) in flight, one on each daemon (least_conn);
# SIGTERM daemon a; then short calls through nginx, first without client retries, then with them;
# both long calls must complete (a finishes what it had accepted) and a must exit 0.
# The daemon sends GOAWAY and closes its listener at the start of the drain (the calls it accepted
# still finish), so nginx opens no new stream to it and every short call lands on b without a client
# retry. (Before 2026-12-06 it sent GOAWAY only after the drain and nginx, which cannot retry a gRPC
# status, passed its UNAVAILABLE on: 2 of 4 calls failed without client retries.)
lines_before=$(wc -l <"$TMP/nginx-access.log")
req "127.0.0.1:$NGX_PORT" "$TMP/long_1.npy" 512 501 & L1=$!
sleep 0.3
req "127.0.0.1:$NGX_PORT" "$TMP/long_2.npy" 512 502 & L2=$!
sleep 0.5
t_term=$(date +%s.%N)
kill -TERM "$PID_A" 2>/dev/null
n_ok=0; n_same=0; N=4
for i in $(seq 1 $N); do
    if req "127.0.0.1:$NGX_PORT" "$TMP/drain_$i.npy"; then
        n_ok=$((n_ok + 1)); cmp -s "$TMP/drain_$i.npy" "$TMP/direct_a.npy" && n_same=$((n_same + 1))
    fi
done
if [ "$n_ok" = "$N" ] && [ "$n_same" = "$N" ]; then
    ok "while daemon a drains, no client retries: $N/$N calls through nginx succeeded, identical bytes"
else
    bad "while daemon a drains, no client retries: $n_ok/$N calls succeeded ($n_same identical)"
fi
n_ok=0; n_same=0
for i in $(seq 1 $N); do
    if req "127.0.0.1:$NGX_PORT" "$TMP/drain_r_$i.npy" 4 1 5; then
        n_ok=$((n_ok + 1)); cmp -s "$TMP/drain_r_$i.npy" "$TMP/direct_a.npy" && n_same=$((n_same + 1))
    fi
done
[ "$n_ok" = "$N" ] && [ "$n_same" = "$N" ] && ok "while daemon a drains, with client retries (--attempts 5, the default): $N/$N calls succeeded, identical bytes" \
    || bad "while daemon a drains, with client retries: $n_ok/$N calls succeeded, $n_same identical"
l_ok=0; wait "$L1" && l_ok=$((l_ok + 1)); wait "$L2" && l_ok=$((l_ok + 1))
[ "$l_ok" = 2 ] && ok "both long calls in flight at SIGTERM completed" || bad "$((2 - l_ok)) of 2 long calls in flight at SIGTERM failed"
# 512 samples of float32 [1, 28, 28] are > 1.6 MB on the wire: find the long call daemon a served.
if tail -n +"$((lines_before + 1))" "$TMP/nginx-access.log" | grep "up=127.0.0.1:$PORT_A " | grep -q "grpc=0/- .*bytes=[0-9]\{7,\}"; then
    ok "daemon a finished the long call it was serving when SIGTERM came"
else
    bad "no completed long call from daemon a in the access log (least_conn should have given it one)"
fi
for ((i = 0; i < 300; i++)); do kill -0 "$PID_A" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$PID_A" 2>/dev/null; then
    bad "daemon a still running 30 s after SIGTERM"; stop_pid "$PID_A" 2
else
    wait "$PID_A"; rc_a=$?
    el=$(python3 -c "print(round($(date +%s.%N)-$t_term,2))")
    [ "$rc_a" = 0 ] && ok "daemon a drained and exited 0 on SIGTERM (${el} s after the signal)" || bad "daemon a exited $rc_a on SIGTERM"
fi

# A replacement daemon c, and nginx reloaded (SIGHUP) with upstreams c and b.
start_daemon c; PID_C=$DAEMON_PID
wait_daemon c "$PID_C"; PORT_C=$(grpc_port "$TMP/c.port")
render_conf "$TMP/onestep-grpc.conf" "$NGX_PORT" "127.0.0.1:$PORT_C" "127.0.0.1:$PORT_B"
if nginx -t -q -p "$TMP" -c "$TMP/nginx.conf" -e "$TMP/nginx-error.log" && kill -HUP "$NGINX_PID"; then
    for ((i = 0; i < 50; i++)); do grep -q "reconfiguring" "$TMP/nginx-error.log" && break; sleep 0.1; done
    sleep 0.5
    lines_before=$(wc -l <"$TMP/nginx-access.log")
    n_ok=0
    for i in 1 2 3 4; do req "127.0.0.1:$NGX_PORT" "$TMP/reload_$i.npy" && cmp -s "$TMP/reload_$i.npy" "$TMP/direct_a.npy" && n_ok=$((n_ok + 1)); done
    if [ "$n_ok" = 4 ] && tail -n +"$((lines_before + 1))" "$TMP/nginx-access.log" | grep -q "up=127.0.0.1:$PORT_C "; then
        ok "after nginx reload (SIGHUP) with a new daemon c: 4/4 calls succeeded and c served some"
    else
        bad "after nginx reload: $n_ok/4 calls succeeded (or c served none)"
    fi
else
    bad "nginx reload with the new upstreams failed"
fi

# Failover: kill daemon b (SIGKILL, as a crash); every call through nginx must still succeed with
# the same bytes, with no client retries.
kill -KILL "$PID_B" 2>/dev/null; wait "$PID_B" 2>/dev/null
n_ok=0; n_same=0; N=6
for i in $(seq 1 $N); do
    if req "127.0.0.1:$NGX_PORT" "$TMP/after_$i.npy"; then
        n_ok=$((n_ok + 1)); cmp -s "$TMP/after_$i.npy" "$TMP/direct_a.npy" && n_same=$((n_same + 1))
    fi
done
[ "$n_ok" = "$N" ] && ok "after killing daemon b (SIGKILL): $N/$N calls through nginx succeeded" \
    || bad "after killing daemon b (SIGKILL): $n_ok/$N calls through nginx succeeded"
[ "$n_same" = "$N" ] && ok "after killing daemon b: outputs still byte-identical" || bad "after killing daemon b: $n_same/$N identical"
echo "  note nginx error log: $(grep -c 'connect() failed' "$TMP/nginx-error.log") failed connect(s) to stopped daemons, $(grep -c 'no live upstreams' "$TMP/nginx-error.log") 'no live upstreams'"

# Clean shutdown: nginx first (graceful QUIT), then SIGTERM to daemon c: it drains and exits 0.
kill -QUIT "$NGINX_PID" 2>/dev/null
for ((i = 0; i < 50; i++)); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$NGINX_PID" 2>/dev/null; then bad "nginx did not quit within 5 s"; stop_pid "$NGINX_PID" 2; else ok "nginx quit on SIGQUIT"; fi
wait "$NGINX_PID" 2>/dev/null; NGINX_PID=""
s=$(date +%s.%N)
kill -TERM "$PID_C" 2>/dev/null
for ((i = 0; i < 300; i++)); do kill -0 "$PID_C" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$PID_C" 2>/dev/null; then
    bad "daemon c still running 30 s after SIGTERM"; stop_pid "$PID_C" 2
else
    wait "$PID_C"; rc_c=$?
    el=$(python3 -c "print(round($(date +%s.%N)-$s,2))")
    [ "$rc_c" = 0 ] && ok "daemon c exited 0 on SIGTERM (${el} s)" || bad "daemon c exited $rc_c on SIGTERM"
fi
PIDS=()
exit 0
