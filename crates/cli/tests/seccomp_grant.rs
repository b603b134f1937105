//! Issue 22: a template asks for a wider seccomp profile with the `spindle:seccomp-profile`
//! tag, and only a caller holding the admin-granted `instance:UseSeccompProfile` may: only
//! the admin credential can grant it, a wildcard doesn't carry it, and the account's deny
//! rules take it away. Checked before anything is created, by `template validate` and the
//! deploy preview alike. Root: validation runs a type's rules only when the daemon provisions
//! the type, and the EC2 types are registered only with the runtime (nothing is launched;
//! the launch itself is tested in `spindle-providers` and `spindle-runtime`).

mod common;

use common::{client_for, Daemon, BIN};
use spindle_client::{Client, ClientError};
use spindle_model::api::*;
use spindle_model::AccountName;

const GRANT: &str = "instance:UseSeccompProfile";

const TEMPLATE: &str = r#"Resources:
  Box:
    Type: AWS::EC2::Instance
    Properties:
      ImageId: ami-00000000000000000
      InstanceType: t3.micro
      SubnetId: subnet-1
      Tags:
        - { Key: spindle:seccomp-profile, Value: devbox }
  Plain:
    Type: AWS::EC2::Instance
    Properties:
      ImageId: ami-00000000000000000
      InstanceType: t3.micro
      SubnetId: subnet-1
      Tags: [{ Key: spindle:seccomp-profile, Value: default }]
"#;

fn request() -> TemplateRequest {
    TemplateRequest {
        template_body: TEMPLATE.into(),
        template_name: Some("box.yaml".into()),
        ..Default::default()
    }
}

/// `line:column path: message` of the diagnostics about seccomp profiles.
fn seccomp_diagnostics(c: &Client) -> Vec<String> {
    c.validate_template("dev", &request())
        .unwrap()
        .diagnostics
        .iter()
        .filter(|d| d.message.contains("seccomp"))
        .map(|d| format!("{}:{} {}: {}", d.line, d.column, d.path, d.message))
        .collect()
}

fn key(admin_or_key: &Client, allow: &[&str]) -> Result<Credentials, ClientError> {
    admin_or_key.create_key(
        "dev",
        &CreateKey {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            description: String::new(),
            ..Default::default()
        },
    )
}

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn a_wider_seccomp_profile_needs_the_admin_granted_grant() {
    if !common::root_tests_can_run(module_path!()) {
        return;
    }
    let prefix = format!("ssg{}", std::process::id() % 100_000);
    let _sweep = spindle_runtime::host::Sweep(prefix.clone());
    let d = Daemon::start_with_runtime(BIN, &prefix);
    let admin = d.admin();
    admin
        .create_account(&CreateAccount {
            name: AccountName::parse("dev").unwrap(),
            description: String::new(),
        })
        .unwrap();
    let star = client_for(&d.endpoint, &key(&admin, &["*"]).unwrap());
    let granted = client_for(&d.endpoint, &key(&admin, &["*", GRANT]).unwrap());

    // A wildcard key can mint wildcard keys, but not this grant; nor can its holder pass it on.
    for (who, c) in [("a * key", &star), ("a key holding the grant", &granted)] {
        match key(c, &[GRANT]) {
            Err(ClientError::Api { status, body }) => {
                assert_eq!(status, 403, "{who}");
                assert_eq!(
                    body.message,
                    "can't grant `instance:UseSeccompProfile`: only the installation's admin credential can grant it",
                    "{who}"
                );
            }
            other => panic!("{who}: expected 403, got {other:?}"),
        }
    }

    // Without the grant: refused where the tag asks, and only there (`default` needs none).
    let refusal = "9:50 Resources.Box.Properties.Tags.0.Value: spindle:seccomp-profile asks for the `devbox` seccomp profile, which needs the grant `instance:UseSeccompProfile`; the caller doesn't hold it (only the installation's admin credential can grant it, naming it exactly in a key's or role's allow list, and the account's deny rules apply)";
    assert_eq!(seccomp_diagnostics(&star), [refusal]);
    // The deploy preview refuses the same template before anything is created.
    let preview = star.deploy_stack(
        "dev",
        "box",
        &DeployStack {
            template: request(),
            preview: true,
            ..Default::default()
        },
    );
    match preview {
        Err(ClientError::Api { status, body }) => {
            assert_eq!(status, 400);
            assert!(
                body.message
                    .contains("needs the grant `instance:UseSeccompProfile`"),
                "{}",
                body.message
            );
        }
        other => panic!("expected a refused preview, got {other:?}"),
    }

    // With it (and for the admin credential): no such diagnostic.
    assert_eq!(seccomp_diagnostics(&granted), Vec::<String>::new());
    assert_eq!(seccomp_diagnostics(&admin), Vec::<String>::new());

    // The account's deny rules are checked like every other grant's.
    admin
        .add_deny_rule(
            "dev",
            &AddDenyRule {
                pattern: "instance:*".into(),
                reason: "no wider profiles in dev".into(),
            },
        )
        .unwrap();
    assert_eq!(seccomp_diagnostics(&granted), [refusal]);
    assert_eq!(seccomp_diagnostics(&admin), Vec::<String>::new());
}
