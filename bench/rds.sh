#!/usr/bin/env bash
# A PostgreSQL DB instance through Spindle against the engine's own tools by hand, in the same
# run (issue #20's peer): the wall time of `spindle stack deploy` adding an
# AWS::RDS::DBInstance to a stack that already has its VPC, subnet group and security group
# (warm engine image; the deploy returns once the engine accepts connections), against
# `initdb` + `pg_ctl -w start` of the same PostgreSQL on the host. Rounds alternate, so a
# noisy machine hurts both alike; it prints the medians and the ratio (target <= 1.5x).
#
#   sudo bench/rds.sh              # ROUNDS=5 by default
#   SPINDLE_BIN=target/release/spindle sudo -E bench/rds.sh
#
# Needs root (instances), Debian's postgresql on the host for the peer (its initdb and
# pg_ctl, run as the `postgres` user) and a built spindle (release if present, else debug).
# The engine image is baked once into SPINDLE_RDS_BAKE_DIR (default target/tmp/rds-bake, the
# tests' cache). The daemon runs on a temp data dir and loopback port and is stopped by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ROUNDS=${ROUNDS:-5}
if [ "$(id -u)" != 0 ]; then echo "skipped: bench/rds.sh: needs root" >&2; exit 0; fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$PGBIN" ] || ! id postgres >/dev/null 2>&1; then
    echo "skipped: bench/rds.sh: no PostgreSQL on the host (apt-get install -y postgresql)" >&2; exit 0
fi
BIN=${SPINDLE_BIN:-}
if [ -z "$BIN" ]; then
    if [ -x "$TARGET/release/spindle" ]; then BIN=$TARGET/release/spindle; else BIN=$TARGET/debug/spindle; fi
fi
[ -x "$BIN" ] || { echo "build spindle first (cargo build [--release] -p spindle-cli)" >&2; exit 1; }
export SPINDLE_RDS_BAKE_DIR=${SPINDLE_RDS_BAKE_DIR:-$TARGET/tmp/rds-bake}

TMP=$(mktemp -d)
chmod 755 "$TMP"
PREFIX=sbr$(( $$ % 100000 ))
DPID=
PGDIRS=()
cli() { "$BIN" --endpoint "$ENDPOINT" --credentials-file "$TMP/creds" "$@"; }
cleanup() {
    for d in "${PGDIRS[@]}"; do
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true
    done
    if [ -n "$DPID" ]; then
        for s in $(seq 1 "$ROUNDS"); do cli stack delete "r$s" --yes >/dev/null 2>&1 || true; done
        cli stack delete warm --yes >/dev/null 2>&1 || true
        kill "$DPID" 2>/dev/null || true
        wait "$DPID" 2>/dev/null || true
        # The runtime keeps its prefix's parent cgroups once it made an instance; remove them
        # (empty now) so the run leaves nothing behind.
        for c in $(find /sys/fs/cgroup -maxdepth 3 -type d -name "$PREFIX" 2>/dev/null); do
            rmdir "$c" 2>/dev/null || true
        done
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

"$BIN" server --listen 127.0.0.1:0 --aws-listen off --ssh-listen off --no-dns \
    --data-dir "$TMP/data" --credentials-file "$TMP/creds" --runtime-prefix "$PREFIX" \
    >"$TMP/daemon.log" 2>&1 &
DPID=$!
for _ in $(seq 1 300); do [ -s "$TMP/data/server.json" ] && break; sleep 0.1; done
ENDPOINT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["endpoint"])' "$TMP/data/server.json")

# A stack's network, and with DB=1 the DB instance in it (VPC 10.N.0.0/16).
template() {
    local n=$1 db=$2
    cat <<YAML
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.$n.0.0/16}}
  Subnet: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.$n.1.0/24}}
  Sg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: postgres
      VpcId: !Ref Vpc
      SecurityGroupIngress: [{IpProtocol: tcp, FromPort: 5432, ToPort: 5432, CidrIp: 10.$n.0.0/16}]
  Group:
    Type: AWS::RDS::DBSubnetGroup
    Properties: {DBSubnetGroupDescription: db, SubnetIds: [!Ref Subnet]}
YAML
    if [ "$db" = 1 ]; then
        cat <<YAML
  Db:
    Type: AWS::RDS::DBInstance
    Properties:
      Engine: postgres
      DBInstanceClass: db.t3.small
      MasterUsername: app
      MasterUserPassword: bench-password-1
      DBName: bench
      DBSubnetGroupName: !Ref Group
      VPCSecurityGroups: [!Ref Sg]
YAML
    fi
}

now() { date +%s.%N; }

# Warm-up: the engine image (baked or imported once) and a first instance.
template 90 1 >"$TMP/warm.yaml"
t0=$(now); cli stack deploy warm "$TMP/warm.yaml" --yes >/dev/null; t1=$(now)
echo "warm-up (engine image into this daemon's store + first DB instance): $(echo "$t1 - $t0" | bc) s"

SP=(); PEER=()
for r in $(seq 1 "$ROUNDS"); do
    n=$((90 + r))
    template "$n" 0 >"$TMP/r$r-net.yaml"
    template "$n" 1 >"$TMP/r$r-db.yaml"
    cli stack deploy "r$r" "$TMP/r$r-net.yaml" --yes >/dev/null
    t0=$(now); cli stack deploy "r$r" "$TMP/r$r-db.yaml" --yes >/dev/null; t1=$(now)
    SP+=("$(echo "$t1 - $t0" | bc)")
    cli stack delete "r$r" --yes >/dev/null

    d="$TMP/pg$r"; PGDIRS+=("$d")
    mkdir "$d"; chown postgres:postgres "$d"
    port=$((25432 + r))
    t0=$(now)
    runuser -u postgres -- "$PGBIN/initdb" -D "$d/data" -U postgres -E UTF8 --no-locale -A trust >/dev/null
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$d/data" -l "$d/log" -w \
        -o "-c port=$port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$d" start >/dev/null
    t1=$(now)
    PEER+=("$(echo "$t1 - $t0" | bc)")
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$d/data" -m fast stop >/dev/null
    echo "round $r: spindle $(printf %.3f "${SP[-1]}") s, initdb + pg_ctl start $(printf %.3f "${PEER[-1]}") s"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ms=$(median "${SP[@]}"); mp=$(median "${PEER[@]}")
echo "median: spindle DB instance create -> accepting connections ${ms} s (stack deploy wall time)"
echo "median: initdb + pg_ctl -w start by hand ${mp} s"
echo "ratio: $(echo "scale=2; $ms / $mp" | bc)x (target <= 1.5x; AWS documents 5-15 min)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (shared machine)"
