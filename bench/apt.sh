#!/usr/bin/env bash
# The apt repository benchmark: add 20,000 packages, first signed publish, republish after
# adding one, peak RSS; with aptly and reprepro from Debian in the same run, ratios printed.
#   bench/apt.sh            installs aptly, reprepro, gnupg and time if missing, then runs
#   bench/apt.sh --no-peers Spindle's figures only
set -euo pipefail
cd "$(dirname "$0")/.."
args=(--peers)
if [ "${1:-}" = "--no-peers" ]; then args=(); fi
if [ "${#args[@]}" -gt 0 ]; then
  for tool in aptly reprepro gpg /usr/bin/time; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      echo "Installing the peers (aptly, reprepro, gnupg, time)" >&2
      apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y aptly reprepro gnupg time
      break
    fi
  done
fi
exec cargo run --release -q -p spindle-apt --example bench_publish -- "${args[@]}"
