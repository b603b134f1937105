#!/usr/bin/env bash
# The apt repository benchmark: add 20,000 packages, first signed publish, republish after
# adding one, peak RSS; with aptly and reprepro from Debian in the same run, ratios printed.
#   bench/apt.sh            installs aptly, reprepro, gnupg and time if missing, then runs
#   bench/apt.sh --no-peers Spindle's figures only
#   bench/apt.sh ... --engine  also the library calls underneath (see bench_publish.rs)
# Spindle runs as its CLI against a release daemon (`repo add bench DIR`, `publish repo`, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
args=(--peers)
if [ "${1:-}" = "--no-peers" ]; then args=(); shift; fi
if [ "${#args[@]}" -gt 0 ]; then
  for tool in aptly reprepro gpg /usr/bin/time; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      echo "Installing the peers (aptly, reprepro, gnupg, time)" >&2
      apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y aptly reprepro gnupg time
      break
    fi
  done
fi
# Spindle is measured as a user runs it: the release `spindle` CLI against its daemon.
cargo build --release -q -p spindle-cli -p spindle-apt --bin spindle --example bench_publish
target=${CARGO_TARGET_DIR:-target}
exec "$target/release/examples/bench_publish" --spindle "$target/release/spindle" "${args[@]}" "$@"
