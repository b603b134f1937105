#!/usr/bin/env bash
# The SSH bastion's jump host against OpenSSH's own sshd as a jump host and a direct login, in
# the same run, on loopback (issue #18's performance targets: login through the bastion adds
# <= 150 ms to a direct login; scp keeps >= 70 % of the direct throughput; 50 concurrent
# sessions grow the jump host's RSS by <= 20 MB).
#
#   bench/ssh.sh                  ROUNDS logins per path, then one scp of SCP_MB per path,
#                                 then SESSIONS concurrent sessions per jump host
#   ROUNDS=20 SCP_MB=100 SESSIONS=50 bench/ssh.sh
#
# The jump host is crates/sshgate's `jump` example (the gate the daemon runs, with a backend
# that forwards to loopback instead of into a VPC namespace), built with the dev profile
# (dependencies at opt-level 1) unless PROFILE=release. The upstream sshd and the peer jump
# sshd are Debian's openssh-server run in the foreground from a temp config and stopped by
# their PIDs; both trust the bench's CA. Paths alternate round by round so a noisy machine
# hurts all alike.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ROUNDS=${ROUNDS:-20}
SCP_MB=${SCP_MB:-100}
SESSIONS=${SESSIONS:-50}
PROFILE=${PROFILE:-dev}

for tool in ssh ssh-keygen scp /usr/sbin/sshd; do
    command -v "$tool" >/dev/null || { echo "skipped: bench/ssh.sh: $tool missing (apt-get install -y openssh-client openssh-server)" >&2; exit 0; }
done
if [ "$PROFILE" = release ]; then
    (cd "$ROOT" && cargo build --release -q -p spindle-sshgate --example jump)
    JUMP=$TARGET/release/examples/jump
else
    (cd "$ROOT" && cargo build -q -p spindle-sshgate --example jump)
    JUMP=$TARGET/debug/examples/jump
fi

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on $1" >&2; exit 1
}

ME=$(id -un)
ssh-keygen -q -t ed25519 -N "" -f "$TMP/id"
ssh-keygen -q -t ed25519 -N "" -f "$TMP/host"
"$JUMP" "$TMP" "$ME" & PIDS+=($!); JUMP_PID=$!
for _ in $(seq 1 200); do [ -s "$TMP/gate.port" ] && break; sleep 0.05; done
GATE=$(cat "$TMP/gate.port")

UP=$(free_port); PEER=$(free_port)
mkdir -p /run/sshd 2>/dev/null || true
for port in "$UP" "$PEER"; do
    cat > "$TMP/sshd_$port" <<CFG
ListenAddress 127.0.0.1:$port
HostKey $TMP/host
TrustedUserCAKeys $TMP/ca.pub
AuthorizedKeysFile none
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
PermitRootLogin prohibit-password
AllowTcpForwarding yes
MaxStartups 200
Subsystem sftp internal-sftp
CFG
    /usr/sbin/sshd -D -e -f "$TMP/sshd_$port" 2>"$TMP/sshd_$port.log" & PIDS+=($!)
    [ "$port" = "$PEER" ] && PEER_PID=$!
done
wait_port "$UP"; wait_port "$PEER"; wait_port "$GATE"

cat > "$TMP/ssh_config" <<CFG
Host *
    User $ME
    IdentityFile $TMP/id
    CertificateFile $TMP/id-cert.pub
    IdentitiesOnly yes
    UserKnownHostsFile /dev/null
    StrictHostKeyChecking no
    BatchMode yes
    LogLevel ERROR
CFG

# path NAME -> the ssh arguments that reach the upstream sshd that way
args() {
    case $1 in
        direct) echo "-p $UP 127.0.0.1" ;;
        bastion) echo "-J 127.0.0.1:$GATE -p $UP 127.0.0.1" ;;
        openssh-jump) echo "-J 127.0.0.1:$PEER -p $UP 127.0.0.1" ;;
    esac
}
PATHS="direct bastion openssh-jump"
for p in $PATHS; do : > "$TMP/login_$p"; done
for r in $(seq 1 "$ROUNDS"); do
    for p in $PATHS; do
        t0=$(date +%s%N)
        # shellcheck disable=SC2046
        ssh -F "$TMP/ssh_config" $(args "$p") true
        echo $(( ($(date +%s%N) - t0) / 1000 )) >> "$TMP/login_$p"
    done
done
median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
D=$(median "$TMP/login_direct"); B=$(median "$TMP/login_bastion"); O=$(median "$TMP/login_openssh-jump")
echo "login (median of $ROUNDS, ms):  direct $(awk "BEGIN{printf \"%.1f\", $D/1000}")  bastion $(awk "BEGIN{printf \"%.1f\", $B/1000}")  openssh-jump $(awk "BEGIN{printf \"%.1f\", $O/1000}")"
echo "  bastion adds $(awk "BEGIN{printf \"%.1f\", ($B-$D)/1000}") ms to a direct login (target <= 150); OpenSSH's jump adds $(awk "BEGIN{printf \"%.1f\", ($O-$D)/1000}") ms; bastion/openssh-jump login ratio $(awk "BEGIN{printf \"%.2f\", $B/$O}")"

if [ "$SCP_MB" -gt 0 ]; then
    head -c "$((SCP_MB * 1024 * 1024))" /dev/urandom > "$TMP/blob"
    line="scp $SCP_MB MB (MB/s):"
    declare -A RATE
    for p in $PATHS; do
        case $p in
            direct) a=(-P "$UP") ;;
            bastion) a=(-J "127.0.0.1:$GATE" -P "$UP") ;;
            openssh-jump) a=(-J "127.0.0.1:$PEER" -P "$UP") ;;
        esac
        t0=$(date +%s%N)
        scp -q -F "$TMP/ssh_config" "${a[@]}" "$TMP/blob" "127.0.0.1:$TMP/copy_$p"
        ns=$(( $(date +%s%N) - t0 ))
        cmp -s "$TMP/blob" "$TMP/copy_$p" || { echo "scp through $p corrupted the file" >&2; exit 1; }
        RATE[$p]=$(awk "BEGIN{printf \"%.1f\", $SCP_MB / ($ns / 1e9)}")
        line="$line  $p ${RATE[$p]}"
        rm -f "$TMP/copy_$p"
    done
    echo "$line"
    echo "  bastion keeps $(awk "BEGIN{printf \"%.0f\", 100 * ${RATE[bastion]} / ${RATE[direct]}}") % of direct throughput (target >= 70); OpenSSH's jump keeps $(awk "BEGIN{printf \"%.0f\", 100 * ${RATE[openssh-jump]} / ${RATE[direct]}}") %"
fi
# RSS in kB of a process and all its descendants (OpenSSH forks a process per session; the
# jump host serves every session in one process).
rss_tree() {
    local total=0 queue=("$1") p r
    while [ ${#queue[@]} -gt 0 ]; do
        p=${queue[0]}; queue=("${queue[@]:1}")
        r=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
        total=$((total + ${r:-0}))
        for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do queue+=("$c"); done
    done
    echo "$total"
}
if [ "$SESSIONS" -gt 0 ]; then
    line="$SESSIONS concurrent sessions, RSS growth (MB):"
    declare -A GROWTH
    for p in bastion openssh-jump; do
        case $p in
            bastion) jump=$GATE; pid=$JUMP_PID ;;
            openssh-jump) jump=$PEER; pid=$PEER_PID ;;
        esac
        before=$(rss_tree "$pid")
        CLIENTS=()
        for i in $(seq 1 "$SESSIONS"); do
            ssh -F "$TMP/ssh_config" -J "127.0.0.1:$jump" -p "$UP" 127.0.0.1 'echo up; sleep 600' \
                > "$TMP/held_${p}_${i}" 2>/dev/null < /dev/null & CLIENTS+=($!)
        done
        for _ in $(seq 1 600); do
            [ "$(cat "$TMP"/held_"$p"_* 2>/dev/null | grep -c up)" -ge "$SESSIONS" ] && break
            sleep 0.1
        done
        up=$(cat "$TMP"/held_"$p"_* 2>/dev/null | grep -c up || true)
        [ "$up" -ge "$SESSIONS" ] || { echo "only $up of $SESSIONS sessions through $p came up" >&2; exit 1; }
        after=$(rss_tree "$pid")
        GROWTH[$p]=$(awk "BEGIN{printf \"%.1f\", ($after - $before) / 1024}")
        line="$line  $p ${GROWTH[$p]}"
        for c in "${CLIENTS[@]}"; do kill "$c" 2>/dev/null || true; done
        for c in "${CLIENTS[@]}"; do wait "$c" 2>/dev/null || true; done
        rm -f "$TMP"/held_"$p"_*
    done
    echo "$line"
    echo "  bastion grows ${GROWTH[bastion]} MB for $SESSIONS sessions (target <= 20); OpenSSH's jump sshd (with its per-session processes) ${GROWTH[openssh-jump]} MB"
fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (shared machine)"
