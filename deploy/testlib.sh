#!/usr/bin/env bash
# Shared helpers of the live deploy tests (test_nginx.sh, test_generate.sh): pass/fail counting,
# a cleanup trap that stops every process started, daemons on kernel-chosen loopback ports, nginx
# rendered from the shipped deploy/nginx/onestep-grpc.conf. Source it after setting:
#   TEST (log prefix), ROOT, BIN, REPO, START_TIMEOUT, and optionally CONF_SRC.
# Then call `testlib_init` (makes $TMP, installs the EXIT trap).

PASS=0; FAIL=0
TMP=""; PIDS=(); NGINX_PID=""
log()  { echo "$TEST: $*"; }
ok()   { PASS=$((PASS + 1)); echo "  ok   $*"; }
bad()  { FAIL=$((FAIL + 1)); echo "  FAIL $*"; }
die()  { echo "$TEST: error: $*" >&2; FAIL=$((FAIL + 1)); exit 1; }

# Stops what this script started, by pid: SIGTERM, then SIGKILL after a bounded wait.
stop_pid() {  # pid [seconds]
    local pid="$1" t="${2:-10}" i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < t * 10; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
}
cleanup() {
    local rc=$?
    # A test's own teardown (e.g. unmounting), before processes and files go.
    if declare -F cleanup_hook >/dev/null; then cleanup_hook; fi
    [ -n "$NGINX_PID" ] && stop_pid "$NGINX_PID" 5
    for p in "${PIDS[@]}"; do stop_pid "$p" 10; done
    wait 2>/dev/null
    if [ -n "$TMP" ] && [ -d "$TMP" ]; then
        if [ "$FAIL" -gt 0 ] || [ "$rc" -ne 0 ]; then
            for f in "$TMP"/*.err "$TMP"/*.log; do
                [ -s "$f" ] && { echo "--- tail of $f"; tail -n 15 "$f"; }
            done
        fi
        if [ "${KEEP_TMP:-0}" = 1 ]; then echo "$TEST: kept $TMP"; else rm -rf "$TMP"; fi
    fi
    echo "$TEST: $PASS passed, $FAIL failed"
    if [ "$FAIL" -gt 0 ] && [ "$rc" -eq 0 ]; then rc=1; fi
    exit "$rc"
}

# Installs nginx (Debian's nginx-light) when missing and we are root.
need_nginx() {
    if ! command -v nginx >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ]; then
            log "installing nginx-light (Debian)"
            for i in 1 2 3; do
                apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null && break
                sleep 10
            done
        fi
        command -v nginx >/dev/null 2>&1 || die "nginx is not installed (apt-get install nginx-light)"
    fi
}

# The scratch folder and the EXIT trap.
testlib_init() {
    command -v python3 >/dev/null 2>&1 || die "python3 is needed to pick free ports and read port files"
    TMP="$(mktemp -d "/tmp/onestep-$TEST.XXXXXX")"
    chmod 755 "$TMP"   # nginx workers may run as nobody
    trap cleanup EXIT
    trap 'exit 130' INT TERM
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
grpc_port() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["grpc"])' "$1"; }

# Starts a daemon on a free loopback port (the daemon picks it: no race), metrics off.
start_daemon() {  # name -> sets DAEMON_PID
    local name="$1"
    "$BIN" serve --config "$TMP/serve.json" --host 127.0.0.1 --port 0 --metrics-port=-1 --http-port=-1 --repository "$REPO" \
        --port-file "$TMP/$name.port" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    DAEMON_PID=$!
    PIDS+=("$DAEMON_PID")
}
wait_daemon() {  # name pid
    local name="$1" pid="$2" i
    for ((i = 0; i < START_TIMEOUT * 4; i++)); do
        if [ -s "$TMP/$name.port" ] && grep -q "listening" "$TMP/$name.out" 2>/dev/null; then return 0; fi
        kill -0 "$pid" 2>/dev/null || die "daemon $name exited during start (see $name.err)"
        sleep 0.25
    done
    die "daemon $name did not listen within ${START_TIMEOUT}s"
}

# ---- nginx: the shipped config, rendered with loopback upstreams, port and log path --------------
render_conf() {  # out-file listen-port upstream...
    local out="$1" port="$2"; shift 2
    python3 - "$CONF_SRC" "$out" "$port" "$TMP" "$@" <<'PY'
import re, sys
src, out, port, tmp, ups = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
text = open(src).read()
m = re.search(r"upstream\s+onestep_grpc\s*\{(.*?)\n\}", text, re.S)
assert m, "no 'upstream onestep_grpc { ... }' block in the config"
body = m.group(1)
servers = re.findall(r"^\s*server\s+\S+(.*);", body, re.M)
assert servers, "no server lines in the upstream block"
params = servers[0]  # keep the shipped max_fails/fail_timeout
body2 = re.sub(r"^\s*server\s+\S+.*;\n", "", body, flags=re.M)
body2 = "".join(f"\n    server {u}{params};" for u in ups) + body2
text = text[:m.start(1)] + body2 + text[m.end(1):]
text, n = re.subn(r"listen\s+\d+\s+http2;", f"listen 127.0.0.1:{port} http2;", text)
assert n == 1, "expected one 'listen PORT http2;' line"
text = re.sub(r"access_log\s+\S+", f"access_log {tmp}/nginx-access.log", text)
open(out, "w").write(text)
PY
    cat >"$TMP/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log notice;
events { worker_connections 512; }
http {
    client_body_temp_path $TMP/body;
    proxy_temp_path $TMP/proxy;
    fastcgi_temp_path $TMP/fastcgi;
    uwsgi_temp_path $TMP/uwsgi;
    scgi_temp_path $TMP/scgi;
    include $out;
}
EOF
}

start_nginx() {  # upstream... -> sets NGX_PORT, NGINX_PID
    local try
    for try in 1 2 3; do
        NGX_PORT=$(free_port)
        render_conf "$TMP/onestep-grpc.conf" "$NGX_PORT" "$@" || die "could not render the nginx config"
        nginx -t -q -p "$TMP" -c "$TMP/nginx.conf" -e "$TMP/nginx-error.log" || die "nginx -t rejected the rendered config"
        : >"$TMP/nginx-access.log"
        nginx -p "$TMP" -c "$TMP/nginx.conf" -e "$TMP/nginx-error.log" &
        NGINX_PID=$!
        local i
        for ((i = 0; i < 100; i++)); do
            if python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),0.2).close()' "$NGX_PORT" 2>/dev/null; then
                return 0
            fi
            kill -0 "$NGINX_PID" 2>/dev/null || break
            sleep 0.1
        done
        stop_pid "$NGINX_PID" 3; NGINX_PID=""   # port taken meanwhile: another one
    done
    die "nginx did not start (see nginx-error.log)"
}
stop_nginx() { [ -n "$NGINX_PID" ] && stop_pid "$NGINX_PID" 5; NGINX_PID=""; }

