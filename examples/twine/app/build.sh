#!/bin/sh
# Builds the twine binary static (glibc, crt-static) so it runs in a busybox or scratch
# image, and copies it to app/dist/twine, where packages/twine.toml picks it up.
# Usage: examples/twine/app/build.sh   (honours CARGO_TARGET_DIR)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
target=x86_64-unknown-linux-gnu
if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
    target=x86_64-unknown-linux-musl
fi
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked \
    --manifest-path "$here/../../../Cargo.toml" -p twine-app --target "$target"
out="${CARGO_TARGET_DIR:-$here/../../../target}/$target/release/twine"
mkdir -p "$here/dist"
cp "$out" "$here/dist/twine"
echo "$here/dist/twine ($target, static)"
