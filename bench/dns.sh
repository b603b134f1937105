#!/usr/bin/env bash
# Benchmarks Spindle's DNS engine against Knot DNS on loopback, in the same run: dnsperf
# against the same zone of RECORDS A records (default 10,000), queries/s and average latency,
# rounds alternating between the two servers so a noisy machine hurts both alike; then the
# latency percentiles (p50, p99) of both at one fixed offered rate (LAT_RATE q/s, default
# 20,000, from dnsperf -v's per-answer latencies, the same rounds alternating); then the
# time for a change batch of BATCH records (default 1,000) to be answered over UDP, and the
# engine's RSS for the zone.
#
#   bench/dns.sh
#   ROUNDS=3 DURATION=10 CLIENTS=4 LAT_RATE=20000 LAT_DURATION=5 bench/dns.sh
#
# Needs dnsperf and knot (Debian: apt-get install -y dnsperf knot). knotd runs in the
# foreground from a config in a temp dir and is stopped by its PID; nothing runs as a service.
# Spindle is measured as the `spindle-dns` engine (examples/bench_zone.rs: the daemon's server
# code on its own, without the API and stack engine that put records there).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-4}
RECORDS=${RECORDS:-10000}
BATCH=${BATCH:-1000}
LAT_RATE=${LAT_RATE:-20000}
LAT_DURATION=${LAT_DURATION:-5}
ZONE=bench.test

for tool in dnsperf knotd; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y dnsperf knot" >&2; exit 1; }
done
(cd "$ROOT" && cargo build --release -q -p spindle-dns --examples)

free_port() {
    python3 -c 'import socket
while True:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0)); p = u.getsockname()[1]
    t = socket.socket()
    try:
        t.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
    finally:
        t.close(); u.close()'
}

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    exec 9>&- 2>/dev/null || true
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

SP=$(free_port)
KP=$(free_port)
mkfifo "$TMP/cmd"
"$TARGET/release/examples/bench_zone" "$ZONE" "$RECORDS" "$SP" "$TMP/$ZONE.zone" <"$TMP/cmd" >"$TMP/spindle.out" 2>&1 &
PIDS+=($!)
exec 9>"$TMP/cmd"
for _ in $(seq 1 600); do grep -q '^ready' "$TMP/spindle.out" && break; sleep 0.1; done
grep -q '^ready' "$TMP/spindle.out" || { cat "$TMP/spindle.out" >&2; exit 1; }

mkdir -p "$TMP/knot"
cat >"$TMP/knot.conf" <<CONF
server:
    rundir: "$TMP/knot"
    listen: 127.0.0.1@$KP
    udp-workers: 2
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$TMP/knot"
template:
  - id: default
    storage: "$TMP"
    semantic-checks: off
zone:
  - domain: $ZONE
    file: "$ZONE.zone"
log:
  - target: stderr
    any: error
CONF
knotd -c "$TMP/knot.conf" 2>"$TMP/knot.log" &
KPID=$!
PIDS+=($KPID)
for _ in $(seq 1 100); do
    dig @127.0.0.1 -p "$KP" +short "h1.$ZONE" A 2>/dev/null | grep -q . && break
    sleep 0.1
done
dig @127.0.0.1 -p "$KP" +short "h1.$ZONE" A | grep -q . || { cat "$TMP/knot.log" >&2; exit 1; }

# The same queries for both: every record once, in a shuffled order, with 1 in 10 a name that
# doesn't exist (NXDOMAIN with the SOA).
python3 - "$RECORDS" "$ZONE" >"$TMP/queries" <<'PY'
import random, sys
n, zone = int(sys.argv[1]), sys.argv[2]
names = [f"h{i}.{zone} A" for i in range(n)] + [f"missing{i}.{zone} A" for i in range(n // 10)]
random.Random(7).shuffle(names)
print("\n".join(names))
PY

# run_dnsperf PORT -> "qps avg_latency_ms lost"
run_dnsperf() {
    local out
    out=$(dnsperf -s 127.0.0.1 -p "$1" -d "$TMP/queries" -l "$DURATION" -c "$CLIENTS" -T 2 -q 200 2>&1)
    awk '/Queries per second:/ { q = $4 } /Average Latency/ { l = $4 * 1000 } /Queries lost:/ { lost = $3 } END { printf "%s %.3f %s\n", q, l, lost }' <<<"$out"
}

echo "zone of $RECORDS A records, dnsperf $CLIENTS clients x ${DURATION}s, $ROUNDS rounds alternating; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -a SQ KQ
for r in $(seq 1 "$ROUNDS"); do
    read -r sq sl slost < <(run_dnsperf "$SP")
    read -r kq kl klost < <(run_dnsperf "$KP")
    printf "round %d: spindle %10.0f q/s avg %.3f ms lost %s | knot %10.0f q/s avg %.3f ms lost %s\n" \
        "$r" "$sq" "$sl" "$slost" "$kq" "$kl" "$klost"
    SQ+=("$sq") KQ+=("$kq")
done
median() { printf "%s\n" "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
ms=$(median "${SQ[@]}") mk=$(median "${KQ[@]}")
printf "median queries/s: spindle %.0f, knot %.0f, ratio spindle/knot %.2f\n" "$ms" "$mk" "$(awk -v a="$ms" -v b="$mk" 'BEGIN { print a / b }')"

# run_latency PORT -> "p50_ms p99_ms answers": dnsperf -v prints each answer as
# `> RCODE NAME TYPE SECONDS`; at a fixed offered rate (-Q) both servers get the same load.
run_latency() {
    dnsperf -s 127.0.0.1 -p "$1" -d "$TMP/queries" -l "$LAT_DURATION" -c "$CLIENTS" -T 2 -Q "$LAT_RATE" -v 2>/dev/null |
        awk '$1 == ">" { print $NF * 1000 }' | sort -g |
        awk 'function at(p,  i) { i = int(NR * p); if (i < NR * p) i++; if (i < 1) i = 1; return a[i] }
             { a[NR] = $1 }
             END { if (NR == 0) print "nan nan 0"; else printf "%.3f %.3f %d\n", at(0.50), at(0.99), NR }'
}

declare -a SP99 KP99
for r in $(seq 1 "$ROUNDS"); do
    read -r s50 s99 sn < <(run_latency "$SP")
    read -r k50 k99 kn < <(run_latency "$KP")
    printf "latency round %d at %d q/s: spindle p50 %s ms p99 %s ms (%s answers) | knot p50 %s ms p99 %s ms (%s answers)\n" \
        "$r" "$LAT_RATE" "$s50" "$s99" "$sn" "$k50" "$k99" "$kn"
    SP99+=("$s99") KP99+=("$k99")
done
s99=$(median "${SP99[@]}") k99=$(median "${KP99[@]}")
printf "median p99 at %d q/s: spindle %s ms, knot %s ms, ratio spindle/knot %.2f (lower is better)\n" \
    "$LAT_RATE" "$s99" "$k99" "$(awk -v a="$s99" -v b="$k99" 'BEGIN { print (b > 0 ? a / b : 0) }')"

echo "batch $BATCH" >&9
for _ in $(seq 1 600); do grep -q '^batch_live_ms' "$TMP/spindle.out" && break; sleep 0.1; done
ready=$(grep '^ready' "$TMP/spindle.out")
live=$(grep '^batch_live_ms' "$TMP/spindle.out")
echo "spindle: a $BATCH-record change batch answered over UDP after $(awk '{ print $2 }' <<<"$live") ms (zone then holds $((RECORDS + BATCH)) records)"
echo "spindle: RSS $(awk '{ print $3 }' <<<"$ready") kB before the zone, $(awk '{ print $5 }' <<<"$ready") kB with it, $(awk '{ print $4 }' <<<"$live") kB after the batch and the dnsperf rounds"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
