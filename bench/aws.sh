#!/usr/bin/env bash
# Benchmarks the AWS-compatible endpoint against moto_server (moto[server] from PyPI), in
# the same run:
#   1. `aws cloudformation deploy` of a small stack (one SSM parameter, create to
#      CREATE_COMPLETE), wall time including the CLI's own start-up;
#   2. signed DescribeStacks through boto3 in a loop: per-call latency seen by the client
#      (signing, HTTP, parsing), p50 and p90.
#
#   bench/aws.sh                  ROUNDS=5 CALLS=300 by default
#   SPINDLE_BIN=target/release/spindle bench/aws.sh
#
# Uses the venv scripts/lib.sh makes (target/pytools, awscli and boto3) and adds moto[server]
# to it. Both servers run on loopback from a temp dir and are stopped by their PIDs. Runs
# alternate between the two so a noisy machine hurts both alike. The twine app stack of
# issue #21's target needs root and a baked image; this measures the endpoint's own cost.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ROUNDS=${ROUNDS:-5}
CALLS=${CALLS:-300}
VENV=${SPINDLE_AWS_VENV:-$TARGET/pytools}
BIN=${SPINDLE_BIN:-}
if [ -z "$BIN" ]; then
    if [ -x "$TARGET/release/spindle" ]; then BIN=$TARGET/release/spindle; else BIN=$TARGET/debug/spindle; fi
fi
[ -x "$BIN" ] || { echo "no spindle binary at $BIN: cargo build [--release] -p spindle-cli" >&2; exit 1; }
[ -x "$VENV/bin/aws" ] || { echo "no aws CLI in $VENV: source scripts/lib.sh && aws_tools" >&2; exit 1; }
"$VENV/bin/python" -c 'import moto.server' 2>/dev/null || "$VENV/bin/pip" install --quiet 'moto[server]'

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 400); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on $1" >&2; exit 1
}

SP=$(free_port); SPAWS=$(free_port); MOTO=$(free_port)
creds=$TMP/spindle-credentials
SPINDLE_LOG=warn "$BIN" server --listen "127.0.0.1:$SP" --aws-listen "127.0.0.1:$SPAWS" \
    --no-runtime --data-dir "$TMP/data" --credentials-file "$creds" 2>"$TMP/spindle.log" &
PIDS+=($!)
"$VENV/bin/moto_server" -p "$MOTO" >"$TMP/moto.log" 2>&1 &
PIDS+=($!)
wait_port "$SP"; wait_port "$SPAWS"; wait_port "$MOTO"

sp() { "$BIN" --endpoint "http://127.0.0.1:$SP" --credentials-file "$creds" "$@"; }
sp account create bench >/dev/null
key=$(sp --account bench -o json account keys create --aws)
export AWS_ACCESS_KEY_ID=$(echo "$key" | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["access_key_id"])')
export AWS_SECRET_ACCESS_KEY=$(echo "$key" | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["secret_access_key"])')
export AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=$TMP/none AWS_SHARED_CREDENTIALS_FILE=$TMP/none
# moto accepts any key.
cat >"$TMP/t.yaml" <<'YAML'
Parameters:
  Env: {Type: String, Default: bench}
Resources:
  Flag:
    Type: AWS::SSM::Parameter
    Properties: {Name: !Sub '/${Env}/flag', Type: String, Value: 'on'}
YAML

declare -A deploy_ms
for r in $(seq 1 "$ROUNDS"); do
    for who in spindle moto; do
        if [ $who = spindle ]; then ep=http://127.0.0.1:$SPAWS; else ep=http://127.0.0.1:$MOTO; fi
        t0=$(date +%s%N)
        "$VENV/bin/aws" --endpoint-url "$ep" cloudformation deploy --stack-name "b$r" \
            --template-file "$TMP/t.yaml" --parameter-overrides "Env=b$r" >/dev/null
        t1=$(date +%s%N)
        deploy_ms[$who]+="$(( (t1 - t0) / 1000000 )) "
    done
done

cat >"$TMP/loop.py" <<'PY'
import os, sys, time, boto3
c = boto3.client("cloudformation", endpoint_url=sys.argv[1])
c.describe_stacks(StackName="b1")
times = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    c.describe_stacks(StackName="b1")
    times.append((time.perf_counter() - t) * 1000)
times.sort()
print(f"{times[len(times)//2]:.2f} {times[len(times)*9//10]:.2f}")
PY
declare -A p50 p90
for who in spindle moto spindle moto; do
    if [ $who = spindle ]; then ep=http://127.0.0.1:$SPAWS; else ep=http://127.0.0.1:$MOTO; fi
    read -r a b < <("$VENV/bin/python" "$TMP/loop.py" "$ep" "$CALLS")
    p50[$who]+="$a "; p90[$who]+="$b "
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "spindle binary: $BIN"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
sd=$(echo "${deploy_ms[spindle]}" | median); md=$(echo "${deploy_ms[moto]}" | median)
echo "aws cloudformation deploy (create, wall ms incl. CLI start-up), median of $ROUNDS: spindle $sd, moto $md, ratio $(awk "BEGIN {printf \"%.2f\", $sd/$md}")"
echo "  runs: spindle ${deploy_ms[spindle]}| moto ${deploy_ms[moto]}"
for who in spindle moto; do
    echo "DescribeStacks via boto3, $CALLS calls x2, client-side ms p50: ${p50[$who]}p90: ${p90[$who]}($who)"
done
sp50=$(echo "${p50[spindle]}" | median); mp50=$(echo "${p50[moto]}" | median)
echo "DescribeStacks p50 ratio spindle/moto: $(awk "BEGIN {printf \"%.2f\", $sp50/$mp50}")"
