//! Data-driven recipe tests: each case is a recipe and the exact diagnostics (or the plan) it
//! must produce.

use std::path::Path;

use spindle_bake::plan::{plan, Inputs, Selection};
use spindle_bake::recipe::{parse, Base, VarInputs};

/// Inputs with fixed answers, so plans are deterministic without touching the disk.
struct Fixed {
    file_digest: String,
}

impl Inputs for Fixed {
    fn content_digest(&self, path: &Path) -> Result<String, String> {
        if path.ends_with("missing.txt") {
            return Err(format!("cannot read `{}`", path.display()));
        }
        Ok(format!("{}:{}", path.display(), self.file_digest))
    }
    fn base_key(&self, base: &Base) -> Result<String, String> {
        match base {
            Base::Image(r) if r == "nope:1" => Err("no image `nope:1` in the bake store".into()),
            b => Ok(b.to_string()),
        }
    }
    fn resolve_packages(
        &self,
        _base: &Base,
        _repo: Option<&spindle_bake::AptRepo>,
        packages: &[String],
    ) -> Result<Vec<String>, String> {
        Ok(packages.iter().map(|p| format!("{p}=1.0")).collect())
    }
}

fn fixed() -> Fixed {
    Fixed {
        file_digest: "v1".into(),
    }
}

/// Parses and plans `src`; returns the diagnostics, one per line, or `ok` and a summary.
fn check_with(
    src: &str,
    vars: &[&str],
    var_files: &[(&str, &str)],
    sel: Selection,
    inputs: &dyn Inputs,
) -> String {
    let mut vi = VarInputs::default();
    for v in vars {
        vi.push_var(v).unwrap();
    }
    for (n, t) in var_files {
        vi.files.push((n.to_string(), t.to_string()));
    }
    let recipe = match parse("r.pkr.hcl", Path::new("/p"), src, &vi) {
        Ok(r) => r,
        Err(d) => return d.to_string(),
    };
    match plan(&recipe, &sel, inputs) {
        Err(d) => d.to_string(),
        Ok(p) => p
            .builds
            .iter()
            .map(|b| {
                let steps: Vec<String> = b.steps.iter().map(|s| s.label()).collect();
                format!(
                    "{} from {} as {}: {}",
                    b.source_ref,
                    b.source.base,
                    b.source.image_name,
                    steps.join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn check(src: &str, expected: &str) {
    let got = check_with(src, &[], &[], Selection::default(), &fixed());
    assert_eq!(got.trim(), expected.trim(), "recipe:\n{src}");
}

const GOOD: &str = r#"
variable "version" {
  type    = string
  default = "1.0"
}
locals {
  tag  = "${local.name}:${var.version}"
  name = "app"
}
source "spindle" "app" {
  base       = "scratch"
  image_name = local.tag
  cmd        = ["/bin/sh"]
}
source "spindle" "dev" {
  base = "image:app:${var.version}"
}
build {
  sources = ["source.spindle.app", "source.spindle.dev"]
  provisioner "file" {
    source      = "busybox"
    destination = "/bin/busybox"
    mode        = "0755"
  }
  provisioner "shell" {
    inline           = ["echo hi > /hello"]
    environment_vars = ["A=1"]
  }
  provisioner "shell" {
    only   = ["spindle.dev"]
    inline = ["echo dev"]
  }
  post-processor "manifest" {}
}
"#;

#[test]
fn good_recipe_plans_every_source() {
    check(
        GOOD,
        "spindle.app from scratch as app:1.0: file #1 (line 20), shell #2 (line 25)\n\
         spindle.dev from image:app:1.0 as dev:latest: file #1 (line 20), shell #2 (line 25), shell #3 (line 29)",
    );
}

#[test]
fn vars_var_files_and_only_except() {
    let got = check_with(
        GOOD,
        &["version=2.0"],
        &[],
        Selection {
            only: vec!["app".into()],
            except: vec![],
        },
        &fixed(),
    );
    assert_eq!(
        got,
        "spindle.app from scratch as app:2.0: file #1 (line 20), shell #2 (line 25)"
    );
    let got = check_with(
        GOOD,
        &[],
        &[("v.pkrvars.hcl", "version = \"3\"\n")],
        Selection {
            only: vec![],
            except: vec!["spindle.app".into()],
        },
        &fixed(),
    );
    assert_eq!(got, "spindle.dev from image:3 as dev:latest: file #1 (line 20), shell #2 (line 25), shell #3 (line 29)".replace("image:3", "image:app:3"));
    let got = check_with(
        GOOD,
        &["nope=1"],
        &[("v.pkrvars.hcl", "\n  other = 1\n")],
        Selection::default(),
        &fixed(),
    );
    assert_eq!(got, "v.pkrvars.hcl:2:3: unknown variable `other`; the recipe declares: version\n-var: unknown variable `nope`; the recipe declares: version");
    let got = check_with(
        GOOD,
        &[],
        &[],
        Selection {
            only: vec!["ghost".into()],
            except: vec![],
        },
        &fixed(),
    );
    assert_eq!(
        got,
        "-only/-except: no source `ghost` in the recipe (sources: spindle.app, spindle.dev)"
    );
}

#[test]
fn errors_name_line_and_column() {
    let cases: &[(&str, &str)] = &[
        (
            "source \"spindle\" \"a\" {\n  base = \"scratch\"\n",
            "r.pkr.hcl:2:20: syntax error: invalid block body; expected `}`, newline or identifier",
        ),
        (
            "source \"docker\" \"a\" {\n  base = \"scratch\"\n}\nbuild {\n  sources = [\"source.docker.a\"]\n}\n",
            "r.pkr.hcl:1:8: unknown builder `docker`; Spindle provides the `spindle` builder",
        ),
        (
            "source \"spindle\" \"a\" {\n  base = \"scratch\"\n}\nbuild {\n  sources = [\"source.spindle.a\"]\n  provisioner \"ansible\" {\n    playbook_file = \"x\"\n  }\n}\n",
            "r.pkr.hcl:6:15: unknown provisioner `ansible`; expected apt, file, shell or warm",
        ),
        (
            "source \"spindle\" \"a\" {\n  base = \"scratch:${var.missing}\"\n}\nbuild {\n  sources = [\"source.spindle.a\"]\n}\n",
            "r.pkr.hcl:2:10: unknown variable `var.missing`; declare it with variable \"missing\" { … }",
        ),
        (
            "source \"spindle\" \"a\" {\n  base = \"scratch\"\n}\nbuild {\n  sources = [\"source.spindle.b\"]\n}\n",
            "r.pkr.hcl:4:1: build uses source `source.spindle.b`, which is not declared (declared: source.spindle.a)",
        ),
        (
            "source \"spindle\" \"a\" {\n  base = \"ubuntu:jammy\"\n  colour = \"red\"\n}\nbuild {\n  sources = [\"source.spindle.a\"]\n  provisioner \"shell\" {\n    inline = [\"true\"]\n    script = \"x.sh\"\n  }\n}\n",
            "r.pkr.hcl:2:10: unknown base `ubuntu:jammy`; expected \"scratch\", \"debian:SUITE\" or \"image:NAME:TAG\"\n\
             r.pkr.hcl:3:3: unknown attribute `colour` in source \"spindle\" \"a\"; expected one of: base, image_name, entrypoint, cmd, env, user, workdir, exposed_ports\n\
             r.pkr.hcl:8:14: give either `inline` or `script`, not both",
        ),
        (
            "variable \"v\" {}\nsource \"spindle\" \"a\" {\n  base = \"scratch\"\n}\nbuild {\n  sources = [\"source.spindle.a\"]\n  provisioner \"file\" {\n    source = \"f\"\n    destination = \"relative\"\n    mode = \"9\"\n  }\n  post-processor \"qcow3\" {}\n}\nbogus {}\n",
            "r.pkr.hcl:1:1: variable `v` has no default and no value; pass -var v=VALUE\n\
             r.pkr.hcl:10:12: mode `9` is not an octal file mode like \"0755\"\n\
             r.pkr.hcl:9:19: destination `relative` must be an absolute path inside the image\n\
             r.pkr.hcl:12:18: unknown post-processor `qcow3`; expected manifest, checksum, oci-archive, oci-layout or qcow2\n\
             r.pkr.hcl:14:1: unknown block `bogus`; expected variable, locals, source or build",
        ),
        (
            "source \"spindle\" \"a\" {\n  base = \"image:nope:1\"\n}\nbuild {\n  sources = [\"source.spindle.a\"]\n  provisioner \"file\" {\n    source = \"missing.txt\"\n    destination = \"/x\"\n  }\n}\n",
            "r.pkr.hcl:1:1: base `image:nope:1`: no image `nope:1` in the bake store",
        ),
        (
            "source \"spindle\" \"a\" {\n  base = \"scratch\"\n}\nbuild {\n  sources = [\"source.spindle.a\"]\n  provisioner \"file\" {\n    source = \"missing.txt\"\n    destination = \"/x\"\n  }\n}\n",
            "r.pkr.hcl:6:3: provisioner \"file\": cannot read `/p/missing.txt`",
        ),
        (
            "source \"spindle\" \"a\" {\n  base = \"scratch\"\n}\nbuild {\n  sources = [\"source.spindle.a\"]\n  post-processor \"qcow2\" {\n    kernel = \"ubuntu:jammy\"\n  }\n  post-processor \"qcow2\" {\n    size = \"big\"\n  }\n}\n",
            "r.pkr.hcl:6:3: post-processor \"qcow2\": kernel `ubuntu:jammy`: expected debian:SUITE\n\
             r.pkr.hcl:9:3: post-processor \"qcow2\": size `big`: expected a number of MiB",
        ),
        (
            "source \"spindle\" \"a\" {\n  base = \"scratch\"\n}\nbuild {\n  sources = [\"source.spindle.a\"]\n  provisioner \"apt\" {\n    packages = [\"x\"]\n    repo = \"http://127.0.0.1:1/apt/a/p\"\n  }\n  provisioner \"apt\" {\n    packages = [\"x\"]\n    repo = \"ftp://h/r\"\n    keyring = \"k.gpg\"\n  }\n  provisioner \"apt\" {\n    packages = [\"x\"]\n    keyring = \"k.gpg\"\n  }\n}\n",
            "r.pkr.hcl:6:3: provisioner \"apt\": `repo` needs `keyring = \"FILE\"` (the repo's public key)\n\
             r.pkr.hcl:10:3: provisioner \"apt\": repo `ftp://h/r` is not an http:// or https:// URL\n\
             r.pkr.hcl:15:3: provisioner \"apt\": `keyring`, `distribution` and `component` go with `repo`",
        ),
        // Issue 14: a declared variable without a value is reported once, as that, and its
        // uses are not reported again as undeclared variables.
        (
            "variable \"repo_url\" {}\nvariable \"repo_keyring\" {}\nsource \"spindle\" \"a\" {\n  base = \"scratch\"\n}\nbuild {\n  sources = [\"source.spindle.a\"]\n  provisioner \"apt\" {\n    packages = [\"x\"]\n    repo = var.repo_url\n    keyring = \"${var.repo_keyring}\"\n  }\n}\n",
            "r.pkr.hcl:2:1: variable `repo_keyring` has no default and no value; pass -var repo_keyring=VALUE\n\
             r.pkr.hcl:1:1: variable `repo_url` has no default and no value; pass -var repo_url=VALUE",
        ),
    ];
    for (src, want) in cases {
        check(src, want);
    }
}

#[test]
fn cache_keys_chain_through_parents() {
    let vi = VarInputs::default();
    let r = parse("r.pkr.hcl", Path::new("/p"), GOOD, &vi).unwrap();
    let sel = Selection {
        only: vec!["app".into()],
        except: vec![],
    };
    let a = plan(&r, &sel, &fixed()).unwrap().builds.remove(0);
    let b = plan(
        &r,
        &sel,
        &Fixed {
            file_digest: "v2".into(),
        },
    )
    .unwrap()
    .builds
    .remove(0);
    assert_eq!(a.base_key, b.base_key);
    assert_ne!(
        a.steps[0].key, b.steps[0].key,
        "copied file content is part of the key"
    );
    assert_ne!(
        a.steps[1].key, b.steps[1].key,
        "a changed parent changes every later key"
    );
    // Changing only the last step keeps the earlier keys.
    let changed = GOOD.replace("echo hi > /hello", "echo bye > /hello");
    let r2 = parse("r.pkr.hcl", Path::new("/p"), &changed, &vi).unwrap();
    let c = plan(&r2, &sel, &fixed()).unwrap().builds.remove(0);
    assert_eq!(a.steps[0].key, c.steps[0].key);
    assert_ne!(a.steps[1].key, c.steps[1].key);
    // Moving the project (other absolute paths, same content) keeps the keys.
    let r3 = parse("r.pkr.hcl", Path::new("/elsewhere"), GOOD, &vi).unwrap();
    struct Moved;
    impl Inputs for Moved {
        fn content_digest(&self, _p: &Path) -> Result<String, String> {
            Ok("/p/busybox:v1".into())
        }
        fn base_key(&self, b: &Base) -> Result<String, String> {
            Ok(b.to_string())
        }
        fn resolve_packages(
            &self,
            _b: &Base,
            _r: Option<&spindle_bake::AptRepo>,
            _p: &[String],
        ) -> Result<Vec<String>, String> {
            Ok(vec![])
        }
    }
    let d = plan(&r3, &sel, &Moved).unwrap().builds.remove(0);
    assert_eq!(a.steps[1].key, d.steps[1].key);
}

#[test]
fn fmt_indents_aligns_and_keeps_meaning() {
    let cases: &[(&str, &str)] = &[
        (
            "source \"spindle\" \"a\" {\nbase=\"scratch\"   \n    image_name = \"a:1\"\n\n\n  cmd = [\n\"/bin/sh\",\n  ]\n}\n\n",
            "source \"spindle\" \"a\" {\n  base       = \"scratch\"\n  image_name = \"a:1\"\n\n  cmd = [\n    \"/bin/sh\",\n  ]\n}\n",
        ),
        (
            "build {\n# a comment { not a brace\nsources = [\"source.spindle.a\"]\nprovisioner \"shell\" {\ninline = [\"echo '${var.x}' a=b {\"]\n}\n}\n",
            "build {\n  # a comment { not a brace\n  sources = [\"source.spindle.a\"]\n  provisioner \"shell\" {\n    inline = [\"echo '${var.x}' a=b {\"]\n  }\n}\n",
        ),
        (
            "locals {\nscript = <<EOT\n  keep   this = as is\nEOT\nx = 1\n}\n",
            "locals {\n  script = <<EOT\n  keep   this = as is\nEOT\n  x = 1\n}\n",
        ),
    ];
    for (input, want) in cases {
        let got = spindle_bake::fmt::format("r.pkr.hcl", input).unwrap();
        assert_eq!(got, *want, "input:\n{input}");
        assert_eq!(
            spindle_bake::fmt::format("r.pkr.hcl", &got).unwrap(),
            got,
            "idempotent"
        );
    }
    let err = spindle_bake::fmt::format("r.pkr.hcl", "build {\n  x = \n}\n").unwrap_err();
    assert!(err.to_string().starts_with("r.pkr.hcl:2:"), "{err}");
}

#[test]
fn qcow2_post_processor_settings_and_defaults() {
    let src = "source \"spindle\" \"a\" {\n  base = \"scratch\"\n}\nbuild {\n  sources = [\"source.spindle.a\"]\n  post-processor \"qcow2\" {}\n  post-processor \"qcow2\" {\n    output = \"vm/dev.qcow2\"\n    kernel = \"debian:trixie\"\n    size = \"512\"\n  }\n}\n";
    let r = parse("r.pkr.hcl", Path::new("/p"), src, &VarInputs::default()).unwrap();
    let posts: Vec<_> = r.builds[0]
        .post_processors
        .iter()
        .map(|(p, _)| p.clone())
        .collect();
    assert_eq!(
        posts,
        [
            spindle_bake::recipe::PostProcessor::Qcow2(spindle_bake::qcow2::Qcow2Spec {
                output: "/p/image.qcow2".into(),
                kernel_suite: "bookworm".into(),
                size_mib: None,
            }),
            spindle_bake::recipe::PostProcessor::Qcow2(spindle_bake::qcow2::Qcow2Spec {
                output: "/p/vm/dev.qcow2".into(),
                kernel_suite: "trixie".into(),
                size_mib: Some(512),
            }),
        ]
    );
}
