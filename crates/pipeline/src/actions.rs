//! The built-in actions `uses:` may name, with their `with:` inputs. docs/pipelines.md lists
//! them from this table ([`markdown`]), and a test keeps the two in step.

/// One input of a built-in action.
pub struct Input {
    pub name: &'static str,
    pub required: bool,
    pub note: &'static str,
    /// The only values allowed (checked unless the value is an expression); empty: any.
    pub allowed: &'static [&'static str],
}

pub struct Builtin {
    /// `owner/name`, matched without the `@ref`.
    pub name: &'static str,
    pub does: &'static str,
    pub inputs: &'static [Input],
    /// Inputs of which exactly one must be given (`spindle/deploy`: a stack or a group).
    pub one_of: &'static [&'static str],
}

const fn i(name: &'static str, required: bool, note: &'static str) -> Input {
    Input {
        name,
        required,
        note,
        allowed: &[],
    }
}

/// An input that takes one of `allowed`.
const fn one_of(name: &'static str, allowed: &'static [&'static str]) -> Input {
    Input {
        name,
        required: false,
        note: "",
        allowed,
    }
}

const BOOL: &[&str] = &["true", "false"];

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "actions/checkout",
        does: "checks the pushed commit out into the workspace from the daemon's git remote",
        inputs: &[
            i(
                "ref",
                false,
                "a branch, tag or commit; default the pushed commit",
            ),
            i("path", false, "under the workspace"),
            i("fetch-depth", false, "0 for the whole history"),
            one_of("clean", BOOL),
            one_of("submodules", &["true", "false", "recursive"]),
            one_of("lfs", BOOL),
            i(
                "repository",
                false,
                "another repository of the same account",
            ),
        ],
        one_of: &[],
    },
    Builtin {
        name: "actions/cache",
        does: "restores and saves paths in the daemon's content store",
        inputs: &[
            i("path", true, "one path or glob per line"),
            i("key", true, ""),
            i("restore-keys", false, "prefixes, one per line"),
            one_of("lookup-only", BOOL),
            one_of("fail-on-cache-miss", BOOL),
            one_of("enableCrossOsArchive", BOOL),
        ],
        one_of: &[],
    },
    Builtin {
        name: "actions/upload-artifact",
        does: "stores files as an artifact of the run",
        inputs: &[
            i("name", false, "default `artifact`"),
            i("path", true, "one path or glob per line"),
            one_of("if-no-files-found", &["warn", "error", "ignore"]),
            i("retention-days", false, ""),
            one_of(
                "compression-level",
                &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            ),
            one_of("overwrite", BOOL),
            one_of("include-hidden-files", BOOL),
        ],
        one_of: &[],
    },
    Builtin {
        name: "actions/download-artifact",
        does: "fetches artifacts of the same run into the workspace",
        inputs: &[
            i("name", false, "default: every artifact"),
            i("path", false, ""),
            i("pattern", false, ""),
            one_of("merge-multiple", BOOL),
        ],
        one_of: &[],
    },
    Builtin {
        name: "spindle/pkg-build",
        does: "builds a .deb from a package spec (`packages/*.toml`)",
        inputs: &[
            i("spec", true, "the spec file, relative to the workspace"),
            i("output", false, "the directory for the .deb"),
        ],
        one_of: &[],
    },
    Builtin {
        name: "spindle/publish",
        does: "adds .deb files to an apt repository and republishes it",
        inputs: &[
            i("repo", true, "the repository name"),
            i("packages", true, "paths or globs of .deb files"),
            i("distribution", false, ""),
        ],
        one_of: &[],
    },
    Builtin {
        name: "spindle/bake",
        does: "bakes an image from a `*.pkr.hcl` recipe",
        inputs: &[
            i("recipe", true, "the recipe file"),
            i("var", false, "`name=value` lines"),
        ],
        one_of: &[],
    },
    Builtin {
        name: "spindle/deploy",
        does: "deploys a stack, or refreshes an auto scaling group's instances and waits",
        inputs: &[
            i("stack", false, "a stack name (with `template`)"),
            i("template", false, "the template file"),
            i("parameters", false, "`Key=Value` lines"),
            i(
                "group",
                false,
                "an auto scaling group name: an instance refresh",
            ),
            i("min-healthy-percentage", false, "for the refresh"),
        ],
        one_of: &["stack", "group"],
    },
];

/// The built-in `uses` names, or `None` with the reason.
pub fn find(uses: &str) -> Option<&'static Builtin> {
    let name = uses.split_once('@').map_or(uses, |(n, _)| n);
    BUILTINS.iter().find(|b| b.name == name)
}

/// The actions as Markdown, as docs/pipelines.md holds them.
pub fn markdown() -> String {
    let mut s = String::from("| Action | Does | `with:` inputs |\n|---|---|---|\n");
    for b in BUILTINS {
        let inputs: Vec<String> = b
            .inputs
            .iter()
            .map(|i| {
                let mut t = format!("`{}`", i.name);
                if i.required {
                    t.push_str(" (required)");
                }
                if !i.allowed.is_empty() {
                    t.push_str(&format!(": {}", i.allowed.join(" \\| ")));
                } else if !i.note.is_empty() {
                    t.push_str(&format!(": {}", i.note));
                }
                t
            })
            .collect();
        let mut inputs = inputs.join("; ");
        if !b.one_of.is_empty() {
            inputs.push_str(&format!(
                "; exactly one of {}",
                b.one_of
                    .iter()
                    .map(|x| format!("`{x}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        s.push_str(&format!("| `{}` | {} | {} |\n", b.name, b.does, inputs));
    }
    s
}
