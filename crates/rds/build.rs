//! Marks root-only tests ignored when this build can't run them (see `spindle-rootgate`).

fn main() {
    spindle_rootgate::emit_build_cfg();
}
