#!/usr/bin/env bash
# The bake benchmark, as root: cold bake and warm re-bake after a last-step change, OCI export
# of a 120 MB tree against GNU tar of the same tree, and a cold debian:bookworm base against
# `debootstrap --variant=minbase` (both from the host's apt mirror), in one run.
#   bench/bake.sh              everything (installs debootstrap if missing)
#   bench/bake.sh --no-debian  skip the Debian comparison (no network needed)
set -euo pipefail
cd "$(dirname "$0")/.."
args=(--debian)
if [ "${1:-}" = "--no-debian" ]; then args=(); fi
if [ "${#args[@]}" -gt 0 ] && ! command -v debootstrap >/dev/null 2>&1; then
  echo "Installing the peer (debootstrap)" >&2
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap
fi
exec cargo run --release -q -p spindle-bake --example bench_bake -- "${args[@]}"
