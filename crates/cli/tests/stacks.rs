//! Stacks through the real daemon: validate with positions, deploy through a change set,
//! update, roll back on a failed update, account isolation, persistence across a restart.

mod common;

use common::{client_for, stderr, stdout, Daemon, BIN};
use spindle_client::ClientError;
use spindle_model::api::*;
use spindle_model::{AccountName, ParamName};

const APP: &str = "\
Parameters:
  Env:
    Type: String
    AllowedValues: [dev, prod]
  DbHost:
    Type: String
    Default: db.internal
Resources:
  Db:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub /twine/${Env}/db
      Type: String
      Value: !Ref DbHost
  Url:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub /twine/${Env}/url
      Type: String
      Value: !Sub postgres://${Db.Value}/twine
Outputs:
  DbParam:
    Value: !Ref Db
";

fn req(body: &str, params: &[(&str, &str)], preview: bool) -> DeployStack {
    DeployStack {
        template: TemplateRequest {
            template_body: body.into(),
            template_name: Some("app.yaml".into()),
            parameters: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..TemplateRequest::default()
        },
        preview,
        ..DeployStack::default()
    }
}

fn param(c: &spindle_client::Client, account: &str, name: &str) -> Option<String> {
    match c.get_param(account, &ParamName::parse(name).unwrap(), true) {
        Ok(p) => Some(p.value),
        Err(ClientError::Api { status: 404, .. }) => None,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn validate_reports_every_problem_with_positions() {
    let d = Daemon::start(BIN);
    let admin = d.admin();
    let body = "Resources:\n  Net:\n    Type: AWS::EC2::VPC\n    Properties:\n      CidrBlock: 10.0.0.0/16\n  P:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Type: String\n      Value: !Ref Nope\n";
    let r = admin
        .validate_template(
            "management",
            &TemplateRequest {
                template_body: body.into(),
                template_name: Some("t.yaml".into()),
                parameters: Default::default(),
                ..TemplateRequest::default()
            },
        )
        .unwrap();
    assert!(!r.valid);
    assert_eq!(r.unsupported_types, vec!["AWS::EC2::VPC".to_string()]);
    let rendered: Vec<String> = r.diagnostics.iter().map(|d| d.to_string()).collect();
    assert!(
        rendered
            .iter()
            .any(|l| l.starts_with("t.yaml:3:11: Resources.Net.Type: unsupported-resource-type")),
        "{rendered:#?}"
    );
    assert!(
        rendered
            .iter()
            .any(|l| l.starts_with("t.yaml:10:14:") && l.contains("Nope")),
        "{rendered:#?}"
    );

    // The CLI prints the same lines and fails.
    let f = d.root().join("t.yaml");
    std::fs::write(&f, body).unwrap();
    let o = d.cli(&["template", "validate", f.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stdout(&o).contains(":3:11: Resources.Net.Type: unsupported-resource-type"),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("not supported yet: AWS::EC2::VPC"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn deploy_update_rollback_isolation_and_restart() {
    let mut d = Daemon::start(BIN);
    let admin = d.admin();
    for n in ["dev", "prod"] {
        admin
            .create_account(&CreateAccount {
                name: AccountName::parse(n).unwrap(),
                description: String::new(),
            })
            .unwrap();
    }
    let dev_key = admin.create_key("dev", &CreateKey::default()).unwrap();
    let prod_key = admin.create_key("prod", &CreateKey::default()).unwrap();
    let dev = client_for(&d.endpoint, &dev_key);
    let prod = client_for(&d.endpoint, &prod_key);

    // Preview, then execute the change set that was reviewed.
    let preview = dev
        .deploy_stack("dev", "app", &req(APP, &[("Env", "dev")], true))
        .unwrap();
    assert!(!preview.executed);
    let adds: Vec<_> = preview
        .changes
        .iter()
        .map(|c| (c.action.as_str(), c.logical_id.as_str()))
        .collect();
    assert_eq!(adds, vec![("Add", "Db"), ("Add", "Url")]);
    let mut exec = req(APP, &[("Env", "dev")], false);
    exec.expected_change_set = Some("not-what-was-reviewed".into());
    match dev.deploy_stack("dev", "app", &exec) {
        Err(ClientError::Api { status: 409, .. }) => {}
        other => panic!("a stale change set must be refused: {other:?}"),
    }
    exec.expected_change_set = Some(preview.change_set_hash.clone());
    let created = dev.deploy_stack("dev", "app", &exec).unwrap();
    assert_eq!(
        created.status.as_deref(),
        Some("CREATE_COMPLETE"),
        "{created:?}"
    );
    assert_eq!(
        param(&dev, "dev", "/twine/dev/url").as_deref(),
        Some("postgres://db.internal/twine")
    );
    let detail = dev.describe_stack("dev", "app").unwrap();
    assert_eq!(detail.outputs[0].value, "/twine/dev/db");
    assert_eq!(detail.resources.len(), 2);

    // The same inputs again: nothing to do.
    let again = dev
        .deploy_stack("dev", "app", &req(APP, &[("Env", "dev")], false))
        .unwrap();
    assert!(!again.executed && again.changes.is_empty());

    // An update changes the value in place, and what depends on it.
    let upd = dev
        .deploy_stack(
            "dev",
            "app",
            &req(APP, &[("Env", "dev"), ("DbHost", "db2.internal")], false),
        )
        .unwrap();
    assert_eq!(upd.status.as_deref(), Some("UPDATE_COMPLETE"), "{upd:?}");
    assert!(upd
        .changes
        .iter()
        .any(|c| c.logical_id == "Db" && c.action == "Modify"));
    assert_eq!(
        param(&dev, "dev", "/twine/dev/url").as_deref(),
        Some("postgres://db2.internal/twine")
    );

    // An update that fails (the name belongs to a parameter a user made) rolls back; the
    // user's parameter and the stack's previous values are intact.
    dev.put_param(
        "dev",
        &ParamName::parse("/user/owned").unwrap(),
        &PutParam {
            value: "mine".into(),
            kind: "String".into(),
            description: String::new(),
            overwrite: false,
        },
    )
    .unwrap();
    let bad = APP.replace(
        "Resources:\n",
        "Resources:\n  Clash:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Name: /user/owned\n      Type: String\n      Value: theirs\n",
    );
    let failed = dev
        .deploy_stack(
            "dev",
            "app",
            &req(&bad, &[("Env", "dev"), ("DbHost", "db3.internal")], false),
        )
        .unwrap();
    assert_eq!(
        failed.status.as_deref(),
        Some("UPDATE_ROLLBACK_COMPLETE"),
        "{failed:?}"
    );
    assert!(
        failed.reason.as_deref().unwrap_or("").contains("Clash"),
        "the reason names the resource: {failed:?}"
    );
    assert_eq!(param(&dev, "dev", "/user/owned").as_deref(), Some("mine"));
    assert_eq!(
        param(&dev, "dev", "/twine/dev/url").as_deref(),
        Some("postgres://db2.internal/twine")
    );
    let events = dev.stack_events("dev", "app").unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.logical_id == "Clash" && e.status == "CREATE_FAILED"),
        "{events:#?}"
    );

    // prod can't see dev's stack; its own list is empty.
    assert!(prod.list_stacks("prod").unwrap().is_empty());
    match prod.describe_stack("dev", "app") {
        Err(ClientError::Api { status: 404, body }) => {
            assert_eq!(body.message, "account `dev` not found")
        }
        other => panic!("{other:?}"),
    }
    match admin.delete_account("dev") {
        Err(ClientError::Api { status: 409, body }) => assert!(
            body.message.contains("still has stacks: app"),
            "{}",
            body.message
        ),
        other => panic!("an account with stacks can't be deleted: {other:?}"),
    }

    // A restart keeps the stack; deleting it removes its parameters.
    d.stop();
    d.spawn();
    let dev = client_for(&d.endpoint, &dev_key);
    let list = dev.list_stacks("dev").unwrap();
    assert_eq!(
        (list[0].name.as_str(), list[0].status.as_str()),
        ("app", "UPDATE_ROLLBACK_COMPLETE")
    );
    let del = dev.delete_stack("dev", "app").unwrap();
    assert_eq!(del.status, "DELETE_COMPLETE");
    assert_eq!(param(&dev, "dev", "/twine/dev/db"), None);
    assert_eq!(param(&dev, "dev", "/user/owned").as_deref(), Some("mine"));
    assert!(dev.list_stacks("dev").unwrap().is_empty());
}

#[test]
fn cli_deploy_shows_the_change_set_and_needs_yes_without_a_terminal() {
    let d = Daemon::start(BIN);
    let f = d.root().join("app.yaml");
    std::fs::write(&f, APP).unwrap();
    let path = f.to_str().unwrap();
    let o = d.cli(&["stack", "deploy", "app", path, "-p", "Env=dev"]);
    assert!(!o.status.success());
    assert!(stdout(&o).contains("Add     Db"), "{}", stdout(&o));
    assert!(stderr(&o).contains("pass --yes"), "{}", stderr(&o));
    let o = d.cli(&["stack", "deploy", "app", path, "-p", "Env=dev", "--yes"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Stack app: CREATE_COMPLETE"),
        "{}",
        stdout(&o)
    );
    let o = d.cli(&["stack", "deploy", "app", path, "-p", "Env=dev", "--yes"]);
    assert!(
        stdout(&o).starts_with("No changes: stack app is up to date (CREATE_COMPLETE)."),
        "{}",
        stdout(&o)
    );
    let o = d.cli(&["stack", "deploy", "app", path, "-p", "Env=staging", "--yes"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("app.yaml:"),
        "errors are positioned: {}",
        stderr(&o)
    );
    let o = d.cli(&["-o", "json", "stack", "outputs", "app"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["value"], "/twine/dev/db");

    // A change behind the stack's back shows as drift on that resource only.
    let o = d.cli(&["-o", "json", "stack", "drift", "app"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "IN_SYNC"),
        "{v}"
    );
    let o = d.cli(&["param", "put", "/twine/dev/db", "elsewhere", "--overwrite"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = d.cli(&["-o", "json", "stack", "drift", "app"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let db = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["logical_id"] == "Db")
        .unwrap();
    assert_eq!(db["status"], "MODIFIED", "{v}");
    assert!(
        db["differences"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "Value"),
        "{v}"
    );
    let url = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["logical_id"] == "Url")
        .unwrap();
    assert_eq!(url["status"], "IN_SYNC", "{v}");

    // A plain deploy sees no changes; --revert-drift shows and reverts the drifted value.
    let o = d.cli(&["stack", "deploy", "app", path, "-p", "Env=dev", "--yes"]);
    assert!(stdout(&o).starts_with("No changes"), "{}", stdout(&o));
    let o = d.cli(&[
        "stack",
        "deploy",
        "app",
        path,
        "-p",
        "Env=dev",
        "--revert-drift",
        "--preview",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Db.Value: \"elsewhere\" → \"db.internal\""),
        "{}",
        stdout(&o)
    );
    let o = d.cli(&[
        "stack",
        "deploy",
        "app",
        path,
        "-p",
        "Env=dev",
        "--revert-drift",
        "--yes",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("UPDATE_COMPLETE"), "{}", stdout(&o));
    let o = d.cli(&["-o", "json", "stack", "drift", "app"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "IN_SYNC"),
        "{v}"
    );
}

/// `kill -9` of the daemon during a 20-resource deploy (18 parameters made, a wait
/// condition pending): the restarted daemon serves at once and recovers in the background;
/// the stack ends in a stable status and none of its parameters is left behind.
#[test]
fn a_killed_deploy_is_recovered_on_restart() {
    let mut d = Daemon::start(BIN);
    let admin = d.admin();
    let mut body = String::from("Resources:\n");
    let mut names = Vec::new();
    for i in 0..18 {
        body.push_str(&format!(
            "  P{i}:\n    Type: AWS::SSM::Parameter\n    Properties: {{Name: /crash/p{i}, Type: String, Value: v{i}}}\n"
        ));
        names.push(format!("P{i}"));
    }
    body.push_str(&format!(
        "  Handle:\n    Type: AWS::CloudFormation::WaitConditionHandle\n  Wait:\n    Type: AWS::CloudFormation::WaitCondition\n    DependsOn: [{}]\n    Properties:\n      Handle: !Ref Handle\n      Timeout: 600\n",
        names.join(", ")
    ));
    let endpoint = d.endpoint.clone();
    let creds = d.credentials_file();
    let sent = body.clone();
    let deploying = std::thread::spawn(move || {
        let f = spindle_client::CredentialsFile::load(&creds).unwrap();
        let p = &f.profiles["default"];
        let c = spindle_client::Client::new(
            &endpoint,
            Some((
                p.access_key_id.clone().unwrap(),
                p.secret_access_key.as_deref().unwrap(),
            )),
        );
        // The daemon dies under this call, so it fails; that's the point.
        c.deploy_stack("management", "crash", &req(&sent, &[], false))
            .err()
    });
    let all_made = |c: &spindle_client::Client| {
        (0..18).all(|i| param(c, "management", &format!("/crash/p{i}")).is_some())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let listed = admin.list_stacks("management").unwrap();
        if listed.first().map(|s| s.status.as_str()) == Some("CREATE_IN_PROGRESS")
            && all_made(&admin)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the deploy never got going: {listed:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    d.kill9();
    assert!(
        deploying.join().unwrap().is_some(),
        "the deploy call must fail when the daemon dies"
    );

    // `spawn` returns once /healthz answers; the API serves while recovery runs.
    d.spawn();
    let admin = d.admin();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let s = loop {
        let s = admin.list_stacks("management").unwrap();
        assert_eq!(s.len(), 1, "{s:?}");
        if !s[0].status.ends_with("IN_PROGRESS") {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never recovered: {s:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(s[0].status, "ROLLBACK_COMPLETE", "{s:?}");
    assert!(
        s[0].reason.as_deref().unwrap_or("").contains("interrupted"),
        "{s:?}"
    );
    for i in 0..18 {
        assert_eq!(
            param(&admin, "management", &format!("/crash/p{i}")),
            None,
            "nothing the stack made is orphaned"
        );
    }
    // The stack can be deployed again after the crash.
    let r = admin
        .deploy_stack(
            "management",
            "crash",
            &req(&body.replace("Timeout: 600", "Timeout: 1"), &[], false),
        )
        .unwrap();
    assert_eq!(r.status.as_deref(), Some("ROLLBACK_COMPLETE"), "{r:?}");
    assert!(r.reason.as_deref().unwrap_or("").contains("Wait"), "{r:?}");
}
