#!/usr/bin/env bash
# Benchmarks the spindle-lb data plane against HAProxy 2.6 on loopback, in the same run.
#
#   bench/lb.sh                 throughput, hop latency and the isolation scenario
#   ROUNDS=3 DURATION=10 bench/lb.sh
#   SKIP_ISOLATION=1 bench/lb.sh     (or SKIP_THROUGHPUT=1 for the isolation scenario only)
#   CALM_SECONDS=10 SPIKE_SECONDS=20 RATE=60 RATE_32=600 SKIP_THROUGHPUT=1 bench/lb.sh
#
# Needs haproxy and wrk (Debian: apt-get install -y haproxy wrk). HAProxy runs in the
# foreground from a config in a temp dir and is stopped by its PID; nothing is installed as a
# service. Runs alternate between the two proxies so a noisy machine hurts both alike.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
BASE=${BASE_PORT:-19100}
BIN=$TARGET/release/examples

for tool in haproxy wrk; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y haproxy wrk" >&2; exit 1; }
done
(cd "$ROOT" && cargo build --release -q -p spindle-lb --examples)

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

wait_port() {
    [ "$1" = "$HA" ] && [ -n "${HA_PID:-}" ] && ! kill -0 "$HA_PID" 2>/dev/null && { cat "$TMP/haproxy.log" >&2; exit 1; }
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "port $1 never opened" >&2
    exit 1
}

B1=$((BASE + 1)) B2=$((BASE + 2)) HA=$((BASE + 10)) SP=$((BASE + 20))

# to_ms VALUE: wrk prints 812.00us, 1.23ms or 1.02s.
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }

# run_wrk URL THREADS CONNS SECONDS -> "req/s p50_ms p99_ms"
run_wrk() {
    local out
    out=$(wrk -t"$2" -c"$3" -d"$4"s --latency "$1")
    local rps p50 p99
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
    p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
    local errs
    errs=$(awk '/Non-2xx|Socket errors/ { print }' <<<"$out")
    [ -n "$errs" ] && echo "    ($1: $errs)" >&2
    echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}

haproxy_cfg() { # balance, maxconn per server, backend ports...
    local balance=$1 maxconn=$2
    shift 2
    cat <<CFG
global
    maxconn 4000
    nbthread 2
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout queue 60s
    option http-keep-alive
    http-reuse always
frontend fe
    bind 127.0.0.1:$HA
    # Equivalent to what spindle-lb does for every request (ALB semantics): append the
    # client to X-Forwarded-For and set X-Forwarded-Proto and X-Forwarded-Port.
    option forwardfor
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Port %[dst_port]
    default_backend be
backend be
    balance $balance
CFG
    local i=0
    for p in "$@"; do
        i=$((i + 1))
        echo "    server s$i 127.0.0.1:$p maxconn $maxconn"
    done
}

start_haproxy() {
    haproxy_cfg "$@" >"$TMP/haproxy.cfg"
    haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 &
    HA_PID=$!
    PIDS+=("$HA_PID")
    wait_port "$HA"
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

if [ -z "${SKIP_THROUGHPUT:-}" ]; then
echo "== throughput: wrk -t2 -c64, ${DURATION}s, 2 targets, ${ROUNDS} rounds alternating"
"$BIN/lb_backend" "127.0.0.1:$B1" >/dev/null & PIDS+=($!)
"$BIN/lb_backend" "127.0.0.1:$B2" >/dev/null & PIDS+=($!)
wait_port "$B1"; wait_port "$B2"
start_haproxy roundrobin 1000 "$B1" "$B2"
"$BIN/lb_proxy" "127.0.0.1:$SP" "127.0.0.1:$B1,127.0.0.1:$B2" >"$TMP/spindle.log" 2>&1 & SP_PID=$!; PIDS+=("$SP_PID")
wait_port "$SP"
until grep -q ready "$TMP/spindle.log"; do sleep 0.05; done
# Warm both up (connection pools, caches).
wrk -t2 -c64 -d2s "http://127.0.0.1:$HA/" >/dev/null
wrk -t2 -c64 -d2s "http://127.0.0.1:$SP/" >/dev/null

declare -a HA_RPS SP_RPS HA_P99 SP_P99
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then order="ha sp"; else order="sp ha"; fi
    for who in $order; do
        if [ "$who" = ha ]; then
            read -r rps _ p99 < <(run_wrk "http://127.0.0.1:$HA/" 2 64 "$DURATION")
            HA_RPS+=("$rps"); HA_P99+=("$p99")
            printf "  round %d  haproxy  %10.0f req/s  p99 %7.2f ms\n" "$r" "$rps" "$p99"
        else
            read -r rps _ p99 < <(run_wrk "http://127.0.0.1:$SP/" 2 64 "$DURATION")
            SP_RPS+=("$rps"); SP_P99+=("$p99")
            printf "  round %d  spindle  %10.0f req/s  p99 %7.2f ms\n" "$r" "$rps" "$p99"
        fi
    done
done
median() { printf "%s\n" "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ha_rps=$(median "${HA_RPS[@]}"); sp_rps=$(median "${SP_RPS[@]}")
ha_p99=$(median "${HA_P99[@]}"); sp_p99=$(median "${SP_P99[@]}")
awk -v a="$sp_rps" -v b="$ha_rps" -v c="$sp_p99" -v d="$ha_p99" 'BEGIN {
    printf "  median: spindle %.0f req/s p99 %.2f ms | haproxy %.0f req/s p99 %.2f ms\n", a, c, b, d
    printf "  ratio: throughput spindle/haproxy = %.2f (target >= 1.0), p99 spindle/haproxy = %.2f (target <= 1.0)\n", a / b, c / d
}'

echo "== hop latency: wrk -t1 -c1, 5s each, p50"
for r in 1 2; do
    read -r _ direct _ < <(run_wrk "http://127.0.0.1:$B1/" 1 1 5)
    read -r _ viaha _ < <(run_wrk "http://127.0.0.1:$HA/" 1 1 5)
    read -r _ viasp _ < <(run_wrk "http://127.0.0.1:$SP/" 1 1 5)
    awk -v d="$direct" -v h="$viaha" -v s="$viasp" -v r="$r" 'BEGIN {
        printf "  round %d  direct p50 %.3f ms | via haproxy %.3f ms (+%.3f) | via spindle %.3f ms (+%.3f, target <= 1.5)\n", r, d, h, h - d, s, s - d
    }'
done
stop_pid "$HA_PID"; stop_pid "$SP_PID"
for p in "${PIDS[@]}"; do stop_pid "$p"; done
PIDS=()
fi

[ -n "${SKIP_ISOLATION:-}" ] && exit 0

# The isolation scenario: each backend is an app server with a hidden worker pool (WORKERS at
# COST_MS each, first-come-first-served beyond it); tenants A-E send open-loop Poisson traffic
# at RATE req/s each for CALM_SECONDS, then A sends ten times as much for SPIKE_SECONDS, with a
# 2 s client timeout and latency counted from each request's scheduled time. Spindle runs with
# exactly the defaults `spindle.tenant.header` alone gives a target group; HAProxy gets one
# shared queue with `maxconn` set to the backends' pool size (it is told what Spindle has to
# find out).
isolation_run() { # WORKERS COST_MS RATE
    local workers=$1 cost=$2 rate=$3
    local cap
    cap=$(awk -v w="$workers" -v c="$cost" 'BEGIN { printf "%.0f", 2 * w * 1000 / c }')
    echo "== isolation: 2 backends x $workers workers x $cost ms ($cap req/s); A-E at $rate req/s, then A at 10x for ${SPIKE_SECONDS:-20} s"
    "$BIN/lb_backend" "127.0.0.1:$B1" "$cost" "$workers" >/dev/null & B1_PID=$!; PIDS+=("$B1_PID")
    "$BIN/lb_backend" "127.0.0.1:$B2" "$cost" "$workers" >/dev/null & B2_PID=$!; PIDS+=("$B2_PID")
    wait_port "$B1"; wait_port "$B2"
    for who in haproxy spindle; do
        if [ "$who" = haproxy ]; then
            start_haproxy leastconn "$workers" "$B1" "$B2"; port=$HA; pid=$HA_PID
        else
            "$BIN/lb_proxy" "127.0.0.1:$SP" "127.0.0.1:$B1,127.0.0.1:$B2" isolation >"$TMP/spindle.log" 2>&1 & pid=$!; PIDS+=("$pid")
            wait_port "$SP"; until grep -q ready "$TMP/spindle.log"; do sleep 0.05; done
            port=$SP
        fi
        echo "  -- through $who (load: $(cut -d' ' -f1-3 /proc/loadavg))"
        "$BIN/lb_tenants" "127.0.0.1:$port" "${CALM_SECONDS:-10}" "${SPIKE_SECONDS:-20}" "$rate" | tee "$TMP/$who.out" | sed 's/^/  /'
        if [ "$who" = spindle ]; then
            echo "  spindle's per-target limits at the end: $(grep limit "$TMP/spindle.log" | tail -2 | awk '{ printf "%s limit %s  ", $1, $3 }')"
        fi
        stop_pid "$pid"
    done
    awk '/^result:/ { r[FILENAME] = $0 } END {
        for (f in r) { split(r[f], a, " "); if (f ~ /haproxy/) { hr = a[11]; hs = a[13] } else { sr = a[11]; ss = a[13] } }
        printf "  B-E p99 spike/calm: spindle %s (target <= 1.2), haproxy %s; B-E success during the spike: spindle %s, haproxy %s\n", sr, hr, ss, hs
    }' "$TMP/haproxy.out" "$TMP/spindle.out"
    stop_pid "$B1_PID"; stop_pid "$B2_PID"
}

isolation_run 4 16 "${RATE:-60}"
# The same with a pool of 32 at 2 ms (16 times the capacity): the limiter is not tuned to one
# size. RATE_32 scales the load; the default keeps the generator within what a shared 2-core
# machine can send, which is below this capacity (see the printed figure).
isolation_run 32 2 "${RATE_32:-600}"
