//! The `aws` CLI (v1) and boto3 from PyPI, in the venv `scripts/lib.sh` (`aws_tools`) makes
//! and names in `SPINDLE_AWS_VENV`, each run with a test's own `~/.aws` files; and the check
//! of a parsed reply against botocore's model that the conformance runs share.

use super::{Daemon, BIN};
use spindle_model::api::*;
use spindle_model::AccountName;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The command's stdout, after asserting it succeeded.
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The venv with `aws` and boto3, or why the test can't run.
pub fn venv() -> Result<PathBuf, String> {
    let v = std::env::var_os("SPINDLE_AWS_VENV")
        .map(PathBuf::from)
        .ok_or("SPINDLE_AWS_VENV is not set (scripts/test sets it up with awscli and boto3)")?;
    if !v.join("bin/aws").exists() {
        return Err(format!("no `aws` in {}", v.display()));
    }
    Ok(v)
}

/// The venv, or `None` after saying the test skipped and why.
pub fn venv_or_skip(test: &str) -> Option<PathBuf> {
    venv()
        .map_err(|why| eprintln!("skipped: {test}: {why}"))
        .ok()
}

/// The test's own `aws` configuration directory.
pub struct AwsHome {
    pub dir: tempfile::TempDir,
    pub venv: PathBuf,
}

impl AwsHome {
    pub fn env(&self, c: &mut Command) {
        c.env("HOME", self.dir.path())
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.dir.path().join(".aws/credentials"),
            )
            .env("AWS_CONFIG_FILE", self.dir.path().join(".aws/config"))
            // The profile `keys create --save-aws-profile dev` writes.
            .env("AWS_PROFILE", "dev")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_DEFAULT_REGION");
    }

    /// `spindle ... --account ACCOUNT` with this home.
    pub fn spindle(&self, d: &Daemon, args: &[&str]) -> Output {
        let mut c = Command::new(BIN);
        c.args(["--endpoint", &d.endpoint, "--credentials-file"])
            .arg(d.credentials_file())
            .args(args)
            .env_remove("SPINDLE_PROFILE")
            .env_remove("SPINDLE_ACCOUNT");
        self.env(&mut c);
        c.output().unwrap()
    }

    /// `aws ARGS --output json`; the parsed reply, or the exit code and stderr.
    pub fn aws(&self, args: &[&str]) -> Result<serde_json::Value, (i32, String)> {
        let mut c = Command::new(self.venv.join("bin/aws"));
        c.args(args).args(["--output", "json"]);
        self.env(&mut c);
        let o = c.output().unwrap();
        if !o.status.success() {
            return Err((
                o.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            ));
        }
        let out = String::from_utf8_lossy(&o.stdout);
        if out.trim().is_empty() {
            return Ok(serde_json::Value::Null);
        }
        Ok(serde_json::from_str(&out).unwrap_or_else(|e| panic!("aws {args:?}: {e}: {out}")))
    }

    /// `aws ARGS` fails, and its error says each of `wants`.
    pub fn refused(&self, args: &[&str], wants: &[&str]) {
        let (_, err) = self.aws(args).unwrap_err();
        for w in wants {
            assert!(err.contains(w), "aws {args:?}: `{w}` not in: {err}");
        }
    }

    /// `aws ARGS` whose output is text; (success, stdout + stderr).
    pub fn aws_text(&self, args: &[&str]) -> (bool, String) {
        let mut c = Command::new(self.venv.join("bin/aws"));
        c.args(args);
        self.env(&mut c);
        let o = c.output().unwrap();
        (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    }

    /// Runs a boto3 script with this home; its stdout parsed as JSON.
    pub fn boto3(&self, script: &str, env: &[(&str, &str)]) -> serde_json::Value {
        let mut c = Command::new(self.venv.join("bin/python"));
        c.arg("-c").arg(script);
        self.env(&mut c);
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "boto3 script failed: {}\n{out}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }
}

/// Account `dev`, and a home whose `dev` profile holds a key of it, made the way a user does
/// (`spindle account keys create --save-aws-profile dev`).
pub fn dev_home(d: &Daemon, venv: PathBuf) -> AwsHome {
    d.admin()
        .create_account(&CreateAccount {
            name: AccountName::parse("dev").unwrap(),
            description: String::new(),
        })
        .unwrap();
    let home = AwsHome {
        dir: tempfile::tempdir().unwrap(),
        venv,
    };
    ok(&home.spindle(
        d,
        &[
            "--account",
            "dev",
            "account",
            "keys",
            "create",
            "--save-aws-profile",
            "dev",
        ],
    ));
    home
}

/// A key made with `keys create --aws -o json`, as (id, secret).
pub fn aws_key(home: &AwsHome, d: &Daemon, account: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec![
        "--account",
        account,
        "-o",
        "json",
        "account",
        "keys",
        "create",
        "--aws",
    ];
    args.extend_from_slice(extra);
    let v: serde_json::Value = serde_json::from_str(&ok(&home.spindle(d, &args))).unwrap();
    (
        v["access_key_id"].as_str().unwrap().to_owned(),
        v["secret_access_key"].as_str().unwrap().to_owned(),
    )
}

/// Python run before a conformance script: `call("service.Operation", **params)` calls the
/// operation through boto3 (whose parsers reject malformed XML and JSON) and checks the parsed
/// reply against the operation's output shape in botocore's model, every required member
/// present and every member of its modelled type; failures go to `problems`, the calls that
/// passed to `checked`.
pub const BOTOCORE_CHECK: &str = r#"
import datetime, json, os
import boto3, botocore.exceptions, botocore.session

session = botocore.session.get_session()
# botocore names clients and models by their own names, not the signing scope's.
model_name = lambda scope: {"elasticloadbalancing": "elbv2"}.get(scope, scope)
clients = {}
def client(svc):
    if svc not in clients:
        clients[svc] = boto3.client(model_name(svc))
    return clients[svc]

problems, checked = [], []

def check(shape, value, path):
    t = shape.type_name
    if t == "structure":
        if not isinstance(value, dict):
            return problems.append(f"{path}: expected a structure, got {value!r}")
        for req in shape.required_members:
            if req not in value:
                problems.append(f"{path}.{req}: required by the model, missing")
        for name, v in value.items():
            if name == "ResponseMetadata":
                continue
            if name not in shape.members:
                problems.append(f"{path}.{name}: not a member in the model")
                continue
            check(shape.members[name], v, f"{path}.{name}")
    elif t == "list":
        if not isinstance(value, list):
            return problems.append(f"{path}: expected a list, got {value!r}")
        for i, v in enumerate(value):
            check(shape.member, v, f"{path}[{i}]")
    elif t == "map":
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a map, got {value!r}")
    elif t == "string":
        if not isinstance(value, str):
            problems.append(f"{path}: expected a string, got {value!r}")
        elif shape.enum and value not in shape.enum:
            problems.append(f"{path}: `{value}` is not one of the model's values")
    elif t in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{path}: expected an integer, got {value!r}")
    elif t == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{path}: expected a boolean, got {value!r}")
    elif t == "timestamp":
        if not isinstance(value, datetime.datetime):
            problems.append(f"{path}: expected a timestamp, got {value!r}")

def call(op, **params):
    svc, name = op.split(".")
    model = session.get_service_model(model_name(svc)).operation_model(name)
    method = botocore.xform_name(name)
    try:
        reply = getattr(client(svc), method)(**params)
    except Exception as e:
        problems.append(f"{op}: {e}")
        return None
    if model.output_shape is not None:
        check(model.output_shape, reply, op)
    checked.append(op)
    return reply

"#;

/// Imports a busybox rootfs into account `dev`, tagged `tag`, whose instances run `cmd`.
pub fn import_busybox(d: &Daemon, tag: &str, cmd: &[&str]) -> ImageInfo {
    let tarball = d.root().join("busybox.tar");
    spindle_runtime::build_busybox_rootfs(
        &tarball,
        std::path::Path::new(spindle_runtime::host::BUSYBOX),
    )
    .unwrap();
    d.admin()
        .import_image(
            "dev",
            &ImportImage {
                path: tarball.display().to_string(),
                tag: Some(tag.into()),
                entrypoint: vec![],
                cmd: cmd.iter().map(|c| c.to_string()).collect(),
            },
        )
        .unwrap()
}
