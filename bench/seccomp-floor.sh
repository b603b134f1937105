#!/usr/bin/env bash
# What any seccomp filter costs a syscall-heavy loop on this kernel, as the floor under
# `bench/run instances`' "syscall loop with / without the seccomp filter" ratio: the same
# read+write loop with no filter, an allow-all filter the kernel's action cache answers, and an
# allow-all filter that loads an argument (BPF on every call). Rounds alternate; the best of
# each is printed with its ratio to no filter. Needs gcc. No root needed.
#   bench/seccomp-floor.sh [ROUNDS] [ITERATIONS]     (defaults 7 and 2000000)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-7}
iterations=${2:-2000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -O2 -Wall -o "$work/seccomp_floor" bench/seccomp_floor.c
declare -A best
modes=(none cached uncached)
for ((r = 0; r < rounds; r++)); do
  # Rotate the order each round, so no mode always runs first.
  for ((i = 0; i < 3; i++)); do
    m=${modes[$(((i + r) % 3))]}
    ns=$("$work/seccomp_floor" "$m" "$iterations")
    if [ -z "${best[$m]:-}" ] || awk -v a="$ns" -v b="${best[$m]}" 'BEGIN { exit !(a < b) }'; then
      best[$m]=$ns
    fi
  done
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); kernel $(uname -r); best of $rounds rounds"
for m in "${modes[@]}"; do
  awk -v m="$m" -v v="${best[$m]}" -v base="${best[none]}" \
    'BEGIN { printf "%-9s %7.1f ns per call  %.3fx no filter\n", m, v, v / base }'
done
