//! Secrets Manager end to end on a real daemon (no root: no instances): a stack with a
//! generated secret and dynamic references; the generated value is nowhere in the data dir
//! (state.db, its WAL, keys, journal) yet `spindle secret get --value` returns it; put and
//! rotate move the stages; a reference to something missing fails validation at its
//! position; and the data-loss guard refuses a replacement and a stack delete until
//! `--allow-data-loss` (issue #20 items 4 and 5).

mod common;

use common::{stderr, stdout, Daemon, BIN};
use std::path::Path;

fn json(o: std::process::Output) -> serde_json::Value {
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                let bytes = std::fs::read(&p).unwrap_or_default();
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    hits.push(p.display().to_string());
                }
            }
        }
    }
    hits
}

const APP: &str = r#"
Resources:
  Master:
    Type: AWS::SecretsManager::Secret
    Properties:
      Name: app/db-master
      Description: the database's master user
      KmsKeyId: alias/aws/secretsmanager
      GenerateSecretString:
        SecretStringTemplate: '{"username": "admin"}'
        GenerateStringKey: password
        PasswordLength: 24
        ExcludeCharacters: '"@/\'
  User:
    Type: AWS::SSM::Parameter
    DependsOn: Master
    Properties:
      Name: /app/db-user
      Type: String
      Value: 'user={{resolve:secretsmanager:app/db-master:SecretString:username}}'
  Url:
    Type: AWS::SSM::Parameter
    Properties:
      Name: /app/url
      Type: String
      Value: '{{resolve:ssm:/app/base}}/v1'
Outputs:
  SecretArn:
    Value: !Ref Master
"#;

#[test]
fn a_generated_secret_and_dynamic_references_leave_no_value_in_the_data_dir() {
    let d = Daemon::start(BIN);
    let base = d.cli(&["param", "put", "/app/base", "http://api.internal"]);
    assert!(base.status.success(), "{}", stderr(&base));
    let file = d.root().join("app.yaml");
    std::fs::write(&file, APP).unwrap();
    let path = file.to_str().unwrap();

    // The preview shows the references as written, never a value.
    let preview = json(d.cli(&["-o", "json", "stack", "deploy", "app", path, "--preview"]));
    let text = preview.to_string();
    assert!(!text.contains("api.internal"), "{text}");
    let o = d.cli(&["stack", "deploy", "app", path, "--yes"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("CREATE_COMPLETE"), "{}", stdout(&o));

    // The references reached the providers resolved.
    let user = json(d.cli(&["-o", "json", "param", "get", "/app/db-user"]));
    assert_eq!(user["value"], "user=admin");
    let url = json(d.cli(&["-o", "json", "param", "get", "/app/url"]));
    assert_eq!(url["value"], "http://api.internal/v1");

    // The stack shows the ARN; the value only through `secret get --value`.
    let outputs = json(d.cli(&["-o", "json", "stack", "outputs", "app"]));
    let arn = outputs[0]["value"].as_str().unwrap().to_string();
    assert!(
        arn.starts_with("arn:aws:secretsmanager:us-east-1:")
            && arn.contains(":secret:app/db-master-"),
        "{arn}"
    );
    let described = json(d.cli(&["-o", "json", "secret", "get", "app/db-master"]));
    assert_eq!(described["arn"], arn.as_str());
    assert!(described.get("secret_string").is_none());
    let value = d.cli(&["secret", "get", &arn, "--value"]);
    assert!(value.status.success(), "{}", stderr(&value));
    let secret: serde_json::Value = serde_json::from_str(stdout(&value).trim()).unwrap();
    assert_eq!(secret["username"], "admin");
    let password = secret["password"].as_str().unwrap().to_string();
    assert_eq!(password.len(), 24);
    assert!(!password.contains(['"', '@', '/', '\\']), "{password}");

    // Nowhere in clear: the data dir (state.db, state.db-wal, keys), the stack's journal
    // and events, the describe and list replies.
    // The search finds what the store does hold in clear (a plain parameter's value)...
    assert!(!files_containing(&d.data_dir(), "http://api.internal/v1").is_empty());
    // ...and not the secret.
    let hits = files_containing(&d.data_dir(), &password);
    assert!(hits.is_empty(), "the generated password is in {hits:?}");
    for args in [
        &["-o", "json", "stack", "events", "app"][..],
        &["-o", "json", "stack", "describe", "app"],
        &["-o", "json", "secret", "list"],
        &["-o", "json", "audit"],
    ] {
        let o = d.cli(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert!(!stdout(&o).contains(&password), "{args:?} shows the value");
    }

    // put: a new AWSCURRENT, the old one AWSPREVIOUS; rotate generates by the rules.
    let newval = d.root().join("v.txt");
    std::fs::write(
        &newval,
        "{\"username\":\"admin\",\"password\":\"chosen-by-hand\"}\n",
    )
    .unwrap();
    let put = json(d.cli(&[
        "-o",
        "json",
        "secret",
        "put",
        "app/db-master",
        "--value-file",
        newval.to_str().unwrap(),
    ]));
    let previous = d.cli(&[
        "secret",
        "get",
        "app/db-master",
        "--value",
        "--stage",
        "AWSPREVIOUS",
    ]);
    assert!(
        stdout(&previous).contains(&password),
        "{}",
        stdout(&previous)
    );
    let rotated = json(d.cli(&["-o", "json", "secret", "rotate", "app/db-master"]));
    assert_ne!(rotated["version_id"], put["version_id"]);
    let now = d.cli(&["secret", "get", "app/db-master", "--value"]);
    let now: serde_json::Value = serde_json::from_str(stdout(&now).trim()).unwrap();
    assert_eq!(now["username"], "admin");
    assert_ne!(now["password"], "chosen-by-hand");
    let stages = json(d.cli(&["-o", "json", "secret", "get", "app/db-master"]));
    let by_id = |id: &serde_json::Value| {
        stages["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| &v["version_id"] == id)
            .map(|v| v["stages"].clone())
    };
    assert_eq!(
        by_id(&put["version_id"]),
        Some(serde_json::json!(["AWSPREVIOUS"]))
    );
    assert_eq!(
        by_id(&rotated["version_id"]),
        Some(serde_json::json!(["AWSCURRENT"]))
    );
    let rotated_pw = now["password"].as_str().unwrap();
    assert!(files_containing(&d.data_dir(), rotated_pw).is_empty());
    assert!(files_containing(&d.data_dir(), "chosen-by-hand").is_empty());

    // A missing secret or parameter fails validation at the reference's position.
    let bad = d.root().join("bad.yaml");
    std::fs::write(
        &bad,
        "Resources:\n  P:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Type: String\n      Value: '{{resolve:ssm:/not/there}}'\n  Q:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Type: String\n      Value: '{{resolve:secretsmanager:app/db-master:SecretString:nokey}}'\n",
    )
    .unwrap();
    let o = d.cli(&["stack", "deploy", "bad", bad.to_str().unwrap(), "--yes"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("bad.yaml:6:14"), "{err}");
    assert!(err.contains("parameter `/not/there` not found"), "{err}");
    assert!(err.contains("bad.yaml:11:14"), "{err}");
    assert!(err.contains("has no JSON key `nokey`"), "{err}");

    // The data-loss guard: renaming the secret replaces it.
    let renamed = d.root().join("renamed.yaml");
    std::fs::write(
        &renamed,
        APP.replace("Name: app/db-master", "Name: app/db-main")
            .replace(
                "secretsmanager:app/db-master:",
                "secretsmanager:app/db-main:",
            ),
    )
    .unwrap();
    let rpath = renamed.to_str().unwrap();
    let preview = json(d.cli(&["-o", "json", "stack", "deploy", "app", rpath, "--preview"]));
    let losses = preview["data_loss"].as_array().unwrap();
    assert_eq!(losses.len(), 1, "{preview}");
    assert!(
        losses[0]
            .as_str()
            .unwrap()
            .contains("`Master` (AWS::SecretsManager::Secret")
            && losses[0]
                .as_str()
                .unwrap()
                .contains("replaced because Name changed"),
        "{losses:?}"
    );
    let o = d.cli(&["stack", "deploy", "app", rpath, "--preview"]);
    assert!(stdout(&o).contains("DATA LOSS: `Master`"), "{}", stdout(&o));
    let o = d.cli(&["stack", "deploy", "app", rpath, "--yes"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("data loss"), "{}", stderr(&o));
    assert!(stderr(&o).contains("--allow-data-loss"), "{}", stderr(&o));
    // The API refuses too, whatever the client checks.
    let api = d.admin().deploy_stack(
        "management",
        "app",
        &spindle_model::api::DeployStack {
            template: spindle_model::api::TemplateRequest {
                template_body: std::fs::read_to_string(&renamed).unwrap(),
                template_name: Some("renamed.yaml".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    );
    let e = api.unwrap_err().to_string();
    assert!(
        e.contains("would lose data") && e.contains("Name changed"),
        "{e}"
    );
    assert!(
        json(d.cli(&["-o", "json", "secret", "list"]))
            .as_array()
            .unwrap()
            .len()
            == 1
    );
    // A named change set says so too, and its execute is refused the same way.
    let cs = json(d.cli(&[
        "-o",
        "json",
        "stack",
        "changeset",
        "create",
        "rename",
        "app",
        rpath,
    ]));
    assert_eq!(cs["data_loss"], preview["data_loss"], "{cs}");
    let o = d.cli(&["stack", "changeset", "describe", "rename", "app"]);
    assert!(stdout(&o).contains("DATA LOSS: `Master`"), "{}", stdout(&o));
    let o = d.cli(&["stack", "changeset", "execute", "rename", "app"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("would lose data"), "{}", stderr(&o));
    let o = d.cli(&[
        "stack",
        "deploy",
        "app",
        rpath,
        "--yes",
        "--allow-data-loss",
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let names: Vec<String> = json(d.cli(&["-o", "json", "secret", "list"]))
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["app/db-main"]);

    // A target attachment names the field of a target type this installation lacks.
    let attach = d.root().join("attach.yaml");
    std::fs::write(
        &attach,
        "Resources:\n  S:\n    Type: AWS::SecretsManager::Secret\n    Properties: {Name: att/db}\n  A:\n    Type: AWS::SecretsManager::SecretTargetAttachment\n    Properties:\n      SecretId: !Ref S\n      TargetId: db-1\n      TargetType: AWS::RDS::DBInstance\n",
    )
    .unwrap();
    let o = d.cli(&[
        "stack",
        "deploy",
        "attach",
        attach.to_str().unwrap(),
        "--yes",
    ]);
    assert!(!o.status.success());
    let events = d.cli(&["-o", "json", "stack", "events", "attach"]);
    assert!(
        stdout(&events).contains("TargetType: unsupported target type `AWS::RDS::DBInstance`"),
        "{}{}",
        stderr(&o),
        stdout(&events)
    );

    // Deleting the stack deletes the secret: refused, then allowed.
    let o = d.cli(&["stack", "delete", "app", "--yes"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("is deleted with the stack"),
        "{}",
        stderr(&o)
    );
    let o = d.cli(&["stack", "delete", "app", "--yes", "--allow-data-loss"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(json(d.cli(&["-o", "json", "secret", "list"]))
        .as_array()
        .unwrap()
        .is_empty());
}
