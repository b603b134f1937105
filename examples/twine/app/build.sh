#!/bin/sh
# Builds the twine binary static (glibc, crt-static) so it runs in a busybox or scratch
# image, and copies it to app/dist/twine, where packages/twine.toml picks it up. Works inside
# the Spindle workspace and in a copy of examples/twine on its own (app/Cargo.lock).
# Usage: examples/twine/app/build.sh   (honours CARGO_TARGET_DIR)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
target=x86_64-unknown-linux-gnu
if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
    target=x86_64-unknown-linux-musl
fi
root=$(dirname "$(cargo locate-project --workspace --message-format plain --manifest-path "$here/Cargo.toml")")
target_dir="${CARGO_TARGET_DIR:-$root/target}"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked \
    --manifest-path "$here/Cargo.toml" --target "$target" --target-dir "$target_dir"
mkdir -p "$here/dist"
cp "$target_dir/$target/release/twine" "$here/dist/twine"
echo "$here/dist/twine ($target, static)"
