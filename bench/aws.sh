#!/usr/bin/env bash
# Benchmarks the AWS-compatible endpoint against moto_server (moto[server] from PyPI), in
# the same run:
#   1. `aws cloudformation deploy` of a small stack (one SSM parameter, create to
#      CREATE_COMPLETE), wall time including the CLI's own start-up;
#   2. signed DescribeStacks through boto3 in a loop: per-call latency seen by the client
#      (signing, HTTP, parsing), p50 and p90;
#   3. DescribeStacks server time: one request signed once by botocore, sent again and again
#      on one keep-alive loopback connection, timed from the last byte sent to the whole
#      reply read (no signing or parsing in the loop), p50 and p90 (target p50 < 2 ms);
#   4. as root only: `aws cloudformation deploy` of examples/twine's app stack (the file as
#      shipped, after its config stack), create to CREATE_COMPLETE and on until its instance
#      answers /healthz through its load balancer (target < 5 s including the CLI's start-up),
#      against moto deploying the same template (moto creates no real resources; it lacks
#      Fn::Cidr, so its copy has the two subnets' CIDRs written out). The image
#      is a busybox stand-in whose httpd answers twine's health check, not a twine bake.
#
#   bench/aws.sh                  ROUNDS=5 CALLS=300 by default
#   SPINDLE_BIN=target/release/spindle bench/aws.sh
#
# Uses the venv scripts/lib.sh makes (target/pytools, awscli and boto3) and adds moto[server]
# to it. The servers run on loopback from a temp dir and are stopped by their PIDs. Runs
# alternate between the two so a noisy machine hurts both alike.
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
RPID=
PREFIX=sab$(( $$ % 100000 ))
cleanup() {
    if [ -n "$RPID" ]; then
        for r in $(seq 1 "$ROUNDS"); do rsp stack delete "twine-app-$r" --yes >/dev/null 2>&1 || true; done
        rsp stack delete twine-config --yes >/dev/null 2>&1 || true
        kill "$RPID" 2>/dev/null || true
        wait "$RPID" 2>/dev/null || true
        # The runtime keeps its prefix's (now empty) parent cgroups; remove them.
        for c in $(find /sys/fs/cgroup -maxdepth 3 -type d -name "$PREFIX" 2>/dev/null); do
            rmdir "$c" 2>/dev/null || true
        done
    fi
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


# 3. Server time: the request is signed once, then the same bytes go out again and again.
cat >"$TMP/server_time.py" <<'PY'
import http.client, sys, time, urllib.parse
import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
ep, n = sys.argv[1], int(sys.argv[2])
creds = botocore.session.get_session().get_credentials()
body = "Action=DescribeStacks&Version=2010-05-15&StackName=b1"
req = AWSRequest(method="POST", url=ep + "/", data=body,
                 headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
SigV4Auth(creds, "cloudformation", "us-east-1").add_auth(req)
u = urllib.parse.urlparse(ep)
c = http.client.HTTPConnection(u.hostname, u.port)
times = []
for i in range(n + 20):
    c.putrequest("POST", "/", skip_accept_encoding=True)
    for k, v in req.headers.items():
        c.putheader(k, v)
    c.putheader("Content-Length", str(len(body)))
    c.endheaders(body.encode())
    t = time.perf_counter()
    r = c.getresponse()
    data = r.read()
    dt = (time.perf_counter() - t) * 1000
    if r.status != 200 or b"b1" not in data:
        sys.exit(f"DescribeStacks answered {r.status}: {data[:300]!r}")
    if i >= 20:
        times.append(dt)
times.sort()
print(f"{times[len(times)//2]:.3f} {times[len(times)*9//10]:.3f}")
PY
declare -A st50 st90
for who in spindle moto spindle moto; do
    if [ $who = spindle ]; then ep=http://127.0.0.1:$SPAWS; else ep=http://127.0.0.1:$MOTO; fi
    read -r a b < <("$VENV/bin/python" "$TMP/server_time.py" "$ep" "$CALLS")
    st50[$who]+="$a "; st90[$who]+="$b "
done

# 4. Twine's app stack, as root: a daemon with the runtime, a busybox stand-in image.
twine_ms=() moto_twine_ms=() twine_cli_ms=()
twine_note=
if [ "$(id -u)" != 0 ] || [ ! -x /bin/busybox ]; then
    twine_note="skipped: the twine app stack deploy needs root and a static /bin/busybox"
else
    RSP=$(free_port); RSPAWS=$(free_port)
    rcreds=$TMP/runtime-credentials
    SPINDLE_LOG=warn "$BIN" server --listen "127.0.0.1:$RSP" --aws-listen "127.0.0.1:$RSPAWS" \
        --ssh-listen off --dns-listen 127.0.0.1:0 --runtime-prefix "$PREFIX" \
        --data-dir "$TMP/rdata" --credentials-file "$rcreds" 2>"$TMP/rspindle.log" &
    RPID=$!
    wait_port "$RSP"; wait_port "$RSPAWS"
    rsp() { "$BIN" --endpoint "http://127.0.0.1:$RSP" --credentials-file "$rcreds" "$@"; }
    rsp account create dev >/dev/null
    rkey=$(rsp --account dev -o json account keys create --aws)
    rid=$(echo "$rkey" | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["access_key_id"])')
    rsecret=$(echo "$rkey" | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["secret_access_key"])')
    mkdir -p "$TMP/rootfs/bin" "$TMP/rootfs/www" "$TMP/rootfs/etc" "$TMP/rootfs/tmp"
    cp /bin/busybox "$TMP/rootfs/bin/busybox"
    for a in sh echo httpd sleep cat; do ln -s busybox "$TMP/rootfs/bin/$a"; done
    echo ok >"$TMP/rootfs/www/healthz"
    tar -C "$TMP/rootfs" -cf "$TMP/twine.tar" .
    ami=$(rsp --account dev -o json image import "$TMP/twine.tar" --tag twine:stand-in \
        --cmd httpd --cmd -f --cmd -p --cmd 8080 --cmd -h --cmd /www |
        "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    APP=$ROOT/examples/twine/stacks/app.yaml
    CONFIG=$ROOT/examples/twine/stacks/config.yaml
    on() { # on spindle|moto AWS-ARGS...: the aws CLI against that server
        local who=$1; shift
        if [ "$who" = spindle ]; then
            AWS_ACCESS_KEY_ID=$rid AWS_SECRET_ACCESS_KEY=$rsecret "$VENV/bin/aws" --endpoint-url "http://127.0.0.1:$RSPAWS" "$@"
        else
            "$VENV/bin/aws" --endpoint-url "http://127.0.0.1:$MOTO" "$@"
        fi
    }
    for who in spindle moto; do
        on $who ssm put-parameter --name /spindle/images/twine/latest --value "$ami" --type String --overwrite >/dev/null
        on $who cloudformation deploy --stack-name twine-config --template-file "$CONFIG" \
            --parameter-overrides Env=dev LogLevel=debug >/dev/null
    done
    # The listener's address of the round's load balancer (each round's stack is its only
    # one), through spindle's own CLI so no second Python start-up lands in the timing.
    lb_addr() {
        rsp --account dev -o json lb list | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)[0]["listeners"][0]["address"])'
    }
    # Polls /healthz through the load balancer every 20 ms, at most 60 s; 0 when it answered.
    serving() {
        "$VENV/bin/python" - "$1" <<'PY'
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
end = time.time() + 60
while time.time() < end:
    try:
        s = socket.create_connection((host, int(port)), timeout=2)
        s.sendall(b"GET /healthz HTTP/1.0\r\nHost: twine\r\n\r\n")
        data = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            data += b
        if data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.0 200"):
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.02)
sys.exit(1)
PY
    }
    # moto 5 has no Fn::Cidr (its CreateChangeSet/ExecuteChangeSet answer a 500, KeyError in
    # Fn::Select over it), which the two subnets' CidrBlock use: moto gets the same template
    # with those two values written out, every resource kept.
    moto_app() {
        sed -e "s|CidrBlock: !Select \[0, !Cidr \[!Ref Cidr, 4, 8\]\]|CidrBlock: 10.$1.0.0/24|" \
            -e "s|CidrBlock: !Select \[1, !Cidr \[!Ref Cidr, 4, 8\]\]|CidrBlock: 10.$1.1.0/24|" "$APP"
    }
    for r in $(seq 1 "$ROUNDS"); do
        moto_app $((200 + r)) >"$TMP/app-moto-$r.yaml"
        grep -q 'Fn::Cidr\|!Cidr' "$TMP/app-moto-$r.yaml" && { echo "moto's copy of app.yaml still has Fn::Cidr" >&2; exit 1; }
        for who in spindle moto; do
            file=$APP
            [ $who = moto ] && file=$TMP/app-moto-$r.yaml
            args=(cloudformation deploy --stack-name "twine-app-$r" --template-file "$file"
                --parameter-overrides Env=dev "Cidr=10.$((200 + r)).0.0/16" MaxSize=3)
            t0=$(date +%s%N)
            if ! out=$(on $who "${args[@]}" 2>&1); then
                echo "$who refused the twine app stack: $out" | tail -n 5 >&2
                [ $who = moto ] && moto_twine_ms+=("refused") && continue
                exit 1
            fi
            t1=$(date +%s%N)
            if [ $who = spindle ]; then
                addr=$(lb_addr)
                serving "$addr" || { echo "twine-app-$r never served /healthz at $addr" >&2; exit 1; }
                t2=$(date +%s%N)
                twine_cli_ms+=("$(( (t1 - t0) / 1000000 ))")
                twine_ms+=("$(( (t2 - t0) / 1000000 ))")
                on spindle cloudformation delete-stack --stack-name "twine-app-$r"
            else
                moto_twine_ms+=("$(( (t1 - t0) / 1000000 ))")
            fi
        done
    done
fi

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

for who in spindle moto; do
    echo "DescribeStacks server time (pre-signed, keep-alive loopback), $CALLS calls x2, ms p50: ${st50[$who]}p90: ${st90[$who]}($who)"
done
ss50=$(echo "${st50[spindle]}" | median); ms50=$(echo "${st50[moto]}" | median)
echo "DescribeStacks server-time p50: spindle $ss50 ms (target < 2), moto $ms50 ms, ratio $(awk "BEGIN {printf \"%.2f\", $ss50/$ms50}")"
if [ -n "$twine_note" ]; then
    echo "$twine_note"
else
    tw=$(echo "${twine_ms[*]}" | median); tc=$(echo "${twine_cli_ms[*]}" | median)
    mt=$(echo "${moto_twine_ms[*]}" | grep -v refused | median || true)
    echo "twine app stack, aws cloudformation deploy to an instance serving /healthz (wall ms incl. CLI start-up), median of $ROUNDS: spindle $tw (target < 5000; the CLI returned at $tc), moto ${mt:-refused} (CREATE_COMPLETE, nothing runs; Fn::Cidr written out for it)${mt:+, ratio $(awk "BEGIN {printf \"%.2f\", $tw/$mt}")}"
    echo "  runs: spindle ${twine_ms[*]} (CLI returned ${twine_cli_ms[*]}) | moto ${moto_twine_ms[*]}"
fi
