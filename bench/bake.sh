#!/usr/bin/env bash
# The bake benchmark, as root: cold bake and warm re-bake after a last-step change, OCI export
# of a 120 MB tree against GNU tar of the same tree, in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release -q -p spindle-bake --example bench_bake
