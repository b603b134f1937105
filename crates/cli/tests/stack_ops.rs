//! Named change sets, termination protection, stack policies, exports and imports, and
//! nested templates bundled by the CLI — through the CLI and a real daemon.

mod common;

use common::{stderr, stdout, Daemon, BIN};
use spindle_model::api::*;
use std::path::Path;

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.to_str().unwrap().to_owned()
}

fn json(o: &std::process::Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

const PARAMS: &str = "\
Parameters:
  Value:
    Type: String
  Secret:
    Type: String
    NoEcho: true
    Default: hunter2
Resources:
  Db:
    Type: AWS::SSM::Parameter
    Properties: {Name: /cs/db, Type: String, Value: !Ref Value}
  Web:
    Type: AWS::SSM::Parameter
    Properties: {Name: /cs/web, Type: String, Value: !Sub '${Value}-web'}
";

#[test]
fn named_change_sets_create_describe_execute_and_go_stale() {
    let d = Daemon::start(BIN);
    let f = write(d.root(), "app.yaml", PARAMS);
    // A change set for a stack that doesn't exist yet: CREATE, every resource added.
    let v = json(&d.cli(&[
        "-o",
        "json",
        "stack",
        "changeset",
        "create",
        "first",
        "app",
        &f,
        "-p",
        "Value=one",
    ]));
    assert_eq!(v["change_set_type"], "CREATE");
    assert_eq!(v["execution_status"], "AVAILABLE");
    assert_eq!(v["parameters"]["Secret"], "****", "NoEcho is masked: {v}");
    assert_eq!(v["parameters"]["Value"], "one");
    let actions: Vec<&str> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["Add", "Add"]);
    // Nothing was deployed by creating it.
    assert!(d.admin().list_stacks("management").unwrap().is_empty());
    let o = d.cli(&["stack", "changeset", "execute", "first", "app"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Stack app: CREATE_COMPLETE"),
        "{}",
        stdout(&o)
    );
    // Executing removed it.
    let v = json(&d.cli(&["-o", "json", "stack", "changeset", "list", "app"]));
    assert_eq!(v.as_array().unwrap().len(), 0, "{v}");

    // An update change set: Modify with per-property before/after.
    let v = json(&d.cli(&[
        "-o",
        "json",
        "stack",
        "changeset",
        "create",
        "second",
        "app",
        &f,
        "-p",
        "Value=two",
        "--description",
        "bump",
    ]));
    assert_eq!(v["change_set_type"], "UPDATE");
    let db = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["logical_id"] == "Db")
        .unwrap()
        .clone();
    assert_eq!(db["action"], "Modify");
    assert_eq!(db["replacement"], "False");
    let value = db["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Value")
        .unwrap()
        .clone();
    assert_eq!(
        (value["before"].as_str(), value["after"].as_str()),
        (Some("\"one\""), Some("\"two\""))
    );
    let o = d.cli(&["stack", "changeset", "describe", "second", "app"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Db.Value: \"one\" → \"two\""),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("bump"), "{}", stdout(&o));
    json(&d.cli(&[
        "-o",
        "json",
        "stack",
        "changeset",
        "create",
        "third",
        "app",
        &f,
        "-p",
        "Value=three",
    ]));
    // A duplicate name is refused.
    let o = d.cli(&[
        "stack",
        "changeset",
        "create",
        "third",
        "app",
        &f,
        "-p",
        "Value=x",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("change set `third` of stack `app`"),
        "{}",
        stderr(&o)
    );

    // The stack changes behind the change sets' back: they are obsolete, and refused.
    let o = d.cli(&["stack", "deploy", "app", &f, "-p", "Value=other", "--yes"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&d.cli(&["-o", "json", "stack", "changeset", "list", "app"]));
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .all(|c| c["execution_status"] == "OBSOLETE"),
        "{v}"
    );
    let o = d.cli(&["stack", "changeset", "execute", "second", "app"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("stack `app` changed after change set `second` was created"),
        "{}",
        stderr(&o)
    );
    let admin = d.admin();
    let p = admin
        .get_param(
            "management",
            &spindle_model::ParamName::parse("/cs/db").unwrap(),
            true,
        )
        .unwrap();
    assert_eq!(p.value, "other", "the stale change set changed nothing");

    let o = d.cli(&["stack", "changeset", "delete", "second", "app"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = d.cli(&["stack", "changeset", "describe", "second", "app"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
    let o = d.cli(&[
        "stack",
        "changeset",
        "create",
        "bad_name",
        "app",
        &f,
        "-p",
        "Value=x",
    ]);
    assert!(
        stderr(&o).contains("change set name `bad_name` is invalid"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn termination_protection_and_stack_policy() {
    let d = Daemon::start(BIN);
    let f = write(d.root(), "app.yaml", PARAMS);
    let policy = write(
        d.root(),
        "policy.json",
        r#"{"Statement":[
          {"Effect":"Allow","Action":"Update:*","Principal":"*","Resource":"*"},
          {"Effect":"Deny","Action":"Update:*","Principal":"*","Resource":"LogicalResourceId/Db"}]}"#,
    );
    let open = write(
        d.root(),
        "open.json",
        r#"{"Statement":[{"Effect":"Allow","Action":"Update:*","Principal":"*","Resource":"*"}]}"#,
    );
    let o = d.cli(&[
        "stack",
        "deploy",
        "app",
        &f,
        "-p",
        "Value=one",
        "--yes",
        "--enable-termination-protection",
        "--stack-policy",
        &policy,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&d.cli(&["-o", "json", "stack", "describe", "app"]));
    assert_eq!(v["termination_protection"], true);
    assert!(v["stack_policy"]
        .as_str()
        .unwrap()
        .contains("LogicalResourceId/Db"));

    let o = d.cli(&["stack", "delete", "app", "--yes"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("termination protection enabled"),
        "{}",
        stderr(&o)
    );
    let v = json(&d.cli(&["-o", "json", "stack", "describe", "app"]));
    assert_eq!(v["status"], "CREATE_COMPLETE");

    // Touching Db: refused before any change, naming Db; Web is unchanged too.
    let o = d.cli(&["stack", "deploy", "app", &f, "-p", "Value=two", "--yes"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Update:Modify on resource `Db` is denied by the stack policy"),
        "{}",
        stderr(&o)
    );
    let admin = d.admin();
    let get = |n: &str| {
        admin
            .get_param(
                "management",
                &spindle_model::ParamName::parse(n).unwrap(),
                true,
            )
            .unwrap()
            .value
    };
    assert_eq!(
        (get("/cs/db"), get("/cs/web")),
        ("one".into(), "one-web".into())
    );
    let v = json(&d.cli(&["-o", "json", "stack", "describe", "app"]));
    assert_eq!(v["status"], "CREATE_COMPLETE", "no operation ran: {v}");

    // A policy for this update only lets it through.
    let o = d.cli(&[
        "stack",
        "deploy",
        "app",
        &f,
        "-p",
        "Value=two",
        "--yes",
        "--stack-policy-during-update",
        &open,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(get("/cs/db"), "two");

    // A malformed policy names the field.
    let bad = write(
        d.root(),
        "bad.json",
        r#"{"Statement":[{"Effect":"Perhaps"}]}"#,
    );
    let o = d.cli(&["stack", "set-policy", "app", &bad]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("Statement[0].Effect"), "{}", stderr(&o));
    let o = d.cli(&["stack", "set-policy", "app", &open]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = d.cli(&["stack", "deploy", "app", &f, "-p", "Value=three", "--yes"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let o = d.cli(&["stack", "update-termination-protection", "app", "--disable"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = d.cli(&["stack", "delete", "app", "--yes"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

const NET: &str = "\
Resources:
  Url:
    Type: AWS::SSM::Parameter
    Properties: {Name: /net/url, Type: String, Value: http://net}
Outputs:
  Url:
    Value: !GetAtt Url.Value
    Export: {Name: !Sub '${AWS::StackName}-url'}
";

const APP: &str = "\
Resources:
  Copy:
    Type: AWS::SSM::Parameter
    Properties: {Name: /app/url, Type: String, Value: !ImportValue net-url}
";

#[test]
fn exports_and_imports_across_stacks() {
    let d = Daemon::start(BIN);
    let net = write(d.root(), "net.yaml", NET);
    let app = write(d.root(), "app.yaml", APP);
    let o = d.cli(&["stack", "deploy", "app", &app, "--yes"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no stack exports `net-url`"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("app.yaml:4:"),
        "positioned: {}",
        stderr(&o)
    );

    assert!(d
        .cli(&["stack", "deploy", "net", &net, "--yes"])
        .status
        .success());
    let o = d.cli(&["stack", "deploy", "app", &app, "--yes"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&d.cli(&["-o", "json", "stack", "exports"]));
    assert_eq!(v[0]["name"], "net-url");
    assert_eq!(v[0]["value"], "http://net");
    assert_eq!(v[0]["exporting_stack"], "net");
    assert_eq!(v[0]["importing_stacks"], serde_json::json!(["app"]));
    let o = d.cli(&["stack", "imports", "net-url"]);
    assert_eq!(stdout(&o).trim(), "app");

    // Removing the export, changing it, or deleting the exporter: refused, naming `app`.
    let removed = write(
        d.root(),
        "net2.yaml",
        &NET.replace("    Export: {Name: !Sub '${AWS::StackName}-url'}\n", ""),
    );
    let o = d.cli(&["stack", "deploy", "net", &removed, "--yes"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("export `net-url` is imported by stack `app`, so it can't be removed"),
        "{}",
        stderr(&o)
    );
    let changed = write(
        d.root(),
        "net3.yaml",
        &NET.replace("http://net", "http://other"),
    );
    let o = d.cli(&["stack", "deploy", "net", &changed, "--yes"]);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stderr(&o).contains("in use by stack app"), "{}", stderr(&o));
    let v = json(&d.cli(&["-o", "json", "stack", "describe", "net"]));
    assert_eq!(v["status"], "UPDATE_ROLLBACK_COMPLETE");
    let o = d.cli(&["stack", "delete", "net", "--yes"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("imported by stack `app`"),
        "{}",
        stderr(&o)
    );

    assert!(d.cli(&["stack", "delete", "app", "--yes"]).status.success());
    let o = d.cli(&["stack", "deploy", "net", &removed, "--yes"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&d.cli(&["-o", "json", "stack", "exports"]));
    assert_eq!(v.as_array().unwrap().len(), 0);
}

#[test]
fn nested_templates_are_bundled_by_the_cli() {
    let d = Daemon::start(BIN);
    let dir = d.root().join("stacks");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    write(
        &dir,
        "parent.yaml",
        "Resources:\n  Child:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: sub/child.yaml\n      Parameters: {Name: /nested/a}\nOutputs:\n  FromChild:\n    Value: !GetAtt Child.Outputs.Grand\n",
    );
    write(
        &dir.join("sub"),
        "child.yaml",
        "Parameters:\n  Name: {Type: String}\nResources:\n  P:\n    Type: AWS::SSM::Parameter\n    Properties: {Name: !Ref Name, Type: String, Value: child}\n  Grand:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: ../grand.yaml\nOutputs:\n  Grand:\n    Value: !GetAtt Grand.Outputs.V\n",
    );
    write(
        &dir,
        "grand.yaml",
        "Resources:\n  G:\n    Type: AWS::SSM::Parameter\n    Properties: {Name: /nested/g, Type: String, Value: grand}\nOutputs:\n  V:\n    Value: !GetAtt G.Value\n",
    );
    let parent = dir.join("parent.yaml");
    let parent = parent.to_str().unwrap();
    let o = d.cli(&["stack", "deploy", "tree", parent, "--yes"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let v = json(&d.cli(&["-o", "json", "stack", "outputs", "tree"]));
    assert_eq!(v[0]["value"], "grand");

    // Through the API without the bundle the daemon doesn't read the files it could see.
    let admin = d.admin();
    let req = DeployStack {
        template: TemplateRequest {
            template_body: std::fs::read_to_string(parent)
                .unwrap()
                .replace("/nested/a", "/nested/b"),
            template_name: Some(parent.to_owned()),
            ..TemplateRequest::default()
        },
        ..DeployStack::default()
    };
    let r = admin.deploy_stack("management", "unbundled", &req).unwrap();
    assert_eq!(r.status.as_deref(), Some("ROLLBACK_COMPLETE"), "{r:?}");
    assert!(
        r.reason
            .as_deref()
            .unwrap_or("")
            .contains("was not sent with the request"),
        "{r:?}"
    );

    // A missing nested file: the CLI names where the template points at it.
    std::fs::remove_file(dir.join("grand.yaml")).unwrap();
    let o = d.cli(&["stack", "deploy", "tree2", parent, "--yes"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("child.yaml:10:20: Resources.Grand.Properties.TemplateURL"),
        "{err}"
    );
    assert!(err.contains("grand.yaml"), "{err}");
}

/// NoEcho values are sealed at rest: the journal and stored change sets in `state.db` never
/// hold them in clear, every view masks them, and after a restart the daemon still compares
/// and deploys with the real values.
#[test]
fn no_echo_values_are_sealed_at_rest_and_masked_everywhere() {
    let mut d = Daemon::start(BIN);
    const SECRET: &str = "hunter2-s3cret-value";
    let body = "\
Parameters:
  Secret: {Type: String, NoEcho: true}
Resources:
  P:
    Type: AWS::SSM::Parameter
    Properties:
      Name: /sealed/p
      Type: String
      Value: plain
      Tags: {token: !Ref Secret}
Outputs:
  Token:
    Value: !Sub 'x-${Secret}'
";
    let f = write(d.root(), "app.yaml", body);
    let secret_arg = format!("Secret={SECRET}");
    let o = d.cli(&["stack", "deploy", "app", &f, "-p", &secret_arg, "--yes"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains(SECRET), "{}", stdout(&o));
    json(&d.cli(&[
        "-o",
        "json",
        "stack",
        "changeset",
        "create",
        "later",
        "app",
        &f,
        "-p",
        "Secret=other-secret-value",
    ]));
    let db = d.data_dir().join("state.db");
    let dump = |table: &str| {
        let o = std::process::Command::new("sqlite3")
            .arg(&db)
            .arg(format!("SELECT * FROM {table}"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let journal = dump("stack_journal");
    assert!(journal.contains("{sealed:v1:"), "{journal}");
    assert!(
        !journal.contains(SECRET),
        "the journal holds the NoEcho value in clear"
    );
    let sets = dump("stack_change_sets");
    assert!(!sets.contains("other-secret-value"), "{sets}");
    for args in [
        vec!["-o", "json", "stack", "describe", "app"],
        vec!["-o", "json", "stack", "events", "app"],
        vec!["-o", "json", "stack", "outputs", "app"],
        vec![
            "-o",
            "json",
            "stack",
            "changeset",
            "describe",
            "later",
            "app",
        ],
        vec!["-o", "json", "audit"],
    ] {
        let o = d.cli(&args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert!(!stdout(&o).contains(SECRET), "{args:?} shows the secret");
        assert!(
            !stdout(&o).contains("other-secret-value"),
            "{args:?} shows the secret"
        );
    }
    let v = json(&d.cli(&["-o", "json", "stack", "outputs", "app"]));
    assert_eq!(v[0]["value"], "****");

    // After a restart the sealed values are read back: the same input is "no changes",
    // and the stored change set still executes with its real value.
    d.stop();
    d.spawn();
    let o = d.cli(&["stack", "deploy", "app", &f, "-p", &secret_arg, "--yes"]);
    assert!(
        stdout(&o).starts_with("No changes"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    let o = d.cli(&["stack", "changeset", "execute", "later", "app"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = d.cli(&[
        "stack",
        "deploy",
        "app",
        &f,
        "-p",
        "Secret=other-secret-value",
        "--yes",
    ]);
    assert!(
        stdout(&o).starts_with("No changes"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );

    // UsePreviousValue: the sealed previous value is used without the caller knowing it.
    let o = d.cli(&[
        "stack",
        "deploy",
        "app",
        &f,
        "--use-previous-value",
        "Secret",
        "--yes",
    ]);
    assert!(
        stdout(&o).starts_with("No changes"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    let changed = write(
        d.root(),
        "app2.yaml",
        &body.replace("Value: plain", "Value: plain2"),
    );
    let o = d.cli(&[
        "stack",
        "deploy",
        "app",
        &changed,
        "--use-previous-value",
        "Secret",
        "--yes",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = d.cli(&[
        "stack",
        "deploy",
        "app",
        &changed,
        "-p",
        "Secret=other-secret-value",
        "--yes",
    ]);
    assert!(
        stdout(&o).starts_with("No changes"),
        "the previous value was the real one: {}{}",
        stdout(&o),
        stderr(&o)
    );
    let o = d.cli(&[
        "stack",
        "deploy",
        "nothing",
        &f,
        "--use-previous-value",
        "Secret",
        "--yes",
    ]);
    assert!(
        stderr(&o).contains("has no previous value"),
        "{}",
        stderr(&o)
    );
    assert!(!dump("stack_journal").contains("other-secret-value"));
}
