//! The foundation's acceptance tests, against a real daemon: isolation between accounts,
//! revoked keys, role assumption with expiry, the audit log of refusals, persistence across a
//! restart, and signature checks on raw HTTP.

mod common;

use common::{client_for, Daemon, BIN};
use spindle_client::ClientError;
use spindle_model::api::*;
use spindle_model::{AccountName, ParamName, RoleName};
use std::collections::BTreeSet;

fn err(r: Result<impl std::fmt::Debug, ClientError>) -> (u16, ErrorDetail) {
    match r {
        Err(ClientError::Api { status, body }) => (status, body),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Fails naming the first file under `dir` whose bytes contain `needle`.
fn assert_no_file_holds(dir: &std::path::Path, needle: &[u8]) {
    let mut stack = vec![dir.to_path_buf()];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                files += 1;
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{} holds the secret in clear",
                    p.display()
                );
            }
        }
    }
    assert!(files > 0, "nothing was read under {}", dir.display());
}

/// What a caller can compare between two answers: everything but the request id.
fn answer(
    e: &(u16, ErrorDetail),
    name_in_message: &str,
    placeholder: &str,
) -> (u16, String, String, Option<String>) {
    (
        e.0,
        e.1.code.clone(),
        e.1.message.replace(name_in_message, placeholder),
        e.1.hint.clone(),
    )
}

#[test]
fn accounts_are_isolated_roles_expire_and_everything_is_audited_and_persists() {
    let mut d = Daemon::start(BIN);
    let admin = d.admin();
    let dev = admin
        .create_account(&CreateAccount {
            name: AccountName::parse("dev").unwrap(),
            description: String::new(),
        })
        .unwrap();
    let prod = admin
        .create_account(&CreateAccount {
            name: AccountName::parse("prod").unwrap(),
            description: String::new(),
        })
        .unwrap();
    let dev_key = admin.create_key("dev", &CreateKey::default()).unwrap();
    let prod_key = admin.create_key("prod", &CreateKey::default()).unwrap();
    let devc = client_for(&d.endpoint, &dev_key);
    let prodc = client_for(&d.endpoint, &prod_key);
    let secret = ParamName::parse("/db/password").unwrap();
    prodc
        .put_param(
            "prod",
            &secret,
            &PutParam {
                value: "hunter2".into(),
                kind: "SecureString".into(),
                description: String::new(),
                overwrite: false,
            },
        )
        .unwrap();

    // dev can't see that prod exists: every probe answers exactly as for a missing account.
    let mut denied_ids = Vec::new();
    type Probe<'a> = Box<dyn Fn(&str) -> (u16, ErrorDetail) + 'a>;
    let probes: Vec<(&str, Probe<'_>)> = vec![
        (
            "describe account",
            Box::new(|a: &str| err(devc.get_account(a))),
        ),
        ("list keys", Box::new(|a: &str| err(devc.list_keys(a)))),
        (
            "list params",
            Box::new(|a: &str| err(devc.list_params(a, ""))),
        ),
        (
            "get param",
            Box::new(|a: &str| err(devc.get_param(a, &secret, true))),
        ),
        (
            "put param",
            Box::new(|a: &str| {
                err(devc.put_param(
                    a,
                    &secret,
                    &PutParam {
                        value: "x".into(),
                        kind: "String".into(),
                        description: String::new(),
                        overwrite: true,
                    },
                ))
            }),
        ),
        (
            "delete param",
            Box::new(|a: &str| err(devc.delete_param(a, &secret))),
        ),
        (
            "create key",
            Box::new(|a: &str| err(devc.create_key(a, &CreateKey::default()))),
        ),
        ("list roles", Box::new(|a: &str| err(devc.list_roles(a)))),
        (
            "audit",
            Box::new(|a: &str| err(devc.audit(Some(a), None, None, None))),
        ),
    ];
    for (what, probe) in &probes {
        for target in ["prod", prod.id.as_str()] {
            let real = probe(target);
            let missing_name = if target == "prod" {
                "nosuch"
            } else {
                "999999999999"
            };
            let missing = probe(missing_name);
            assert_eq!(real.0, 404, "{what} {target}: {real:?}");
            assert_eq!(
                answer(&real, target, "X"),
                answer(&missing, missing_name, "X"),
                "{what}: prod must look missing"
            );
            denied_ids.push(real.1.request_id.clone());
            denied_ids.push(missing.1.request_id.clone());
        }
    }
    let listed: Vec<String> = devc
        .list_accounts()
        .unwrap()
        .into_iter()
        .map(|a| a.name.to_string())
        .collect();
    assert_eq!(listed, vec!["dev"]);
    assert_eq!(
        prodc.get_param("prod", &secret, true).unwrap().value,
        "hunter2",
        "prod's data is unchanged"
    );
    assert_eq!(
        prodc.get_param("prod", &secret, false).unwrap().value,
        "****",
        "SecureString is masked by default"
    );
    // Sealed at rest: no file of the data dir (state.db, its WAL, anything else) holds it.
    assert_no_file_holds(&d.data_dir(), b"hunter2");

    // Org-level actions need the admin credential.
    let e = err(devc.create_account(&CreateAccount {
        name: AccountName::parse("evil").unwrap(),
        description: String::new(),
    }));
    assert_eq!((e.0, e.1.code.as_str()), (403, "AccessDenied"));
    denied_ids.push(e.1.request_id);

    // A scoped key is limited to its grants, and can't mint a wider key.
    let ro = devc
        .create_key(
            "dev",
            &CreateKey {
                allow: vec!["param:Get".into(), "param:List".into()],
                description: "ro".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let roc = client_for(&d.endpoint, &ro);
    roc.list_params("dev", "").unwrap();
    let e = err(roc.put_param(
        "dev",
        &secret,
        &PutParam {
            value: "x".into(),
            kind: "String".into(),
            description: String::new(),
            overwrite: false,
        },
    ));
    assert_eq!(e.0, 403);
    denied_ids.push(e.1.request_id);
    let e = err(devc.create_key(
        "dev",
        &CreateKey {
            allow: vec!["nosuch:*".into()],
            description: String::new(),
            ..Default::default()
        },
    ));
    assert_eq!(e.0, 400, "{e:?}");

    // A revoked key is refused.
    let tmp = devc.create_key("dev", &CreateKey::default()).unwrap();
    let tmpc = client_for(&d.endpoint, &tmp);
    tmpc.whoami().unwrap();
    devc.revoke_key("dev", &tmp.access_key_id).unwrap();
    let e = err(tmpc.whoami());
    assert_eq!((e.0, e.1.code.as_str()), (401, "InvalidAccessKeyId"));
    denied_ids.push(e.1.request_id);

    // Deny rules beat any allow, and only the admin sets them.
    admin
        .add_deny_rule(
            "dev",
            &AddDenyRule {
                pattern: "param:Delete".into(),
                reason: "keep history".into(),
            },
        )
        .unwrap();
    let e = err(devc.add_deny_rule(
        "dev",
        &AddDenyRule {
            pattern: "param:Get".into(),
            reason: String::new(),
        },
    ));
    assert_eq!(e.0, 403);
    denied_ids.push(e.1.request_id);
    devc.put_param(
        "dev",
        &secret,
        &PutParam {
            value: "v".into(),
            kind: "String".into(),
            description: String::new(),
            overwrite: false,
        },
    )
    .unwrap();
    let e = err(devc.delete_param("dev", &secret));
    assert_eq!(e.0, 403);
    assert!(e.1.message.contains("deny rule `param:Delete`"), "{e:?}");
    denied_ids.push(e.1.request_id);

    // A role in prod trusting dev: dev assumes it and acts in prod until the session expires.
    let role = admin
        .create_role(
            "prod",
            &CreateRole {
                name: RoleName::parse("deployer").unwrap(),
                trust: vec!["dev".into()],
                allow: vec!["param:*".into()],
                max_session_seconds: None,
            },
        )
        .unwrap();
    assert_eq!(role.trust, vec![dev.id.clone()]);
    let e = err(prodc.assume_role(&AssumeRole {
        role: role.name.clone(),
        account: None,
        duration_seconds: None,
        session_name: None,
    }));
    assert_eq!(e.0, 404, "prod is not trusted by its own role");
    denied_ids.push(e.1.request_id);
    let session = devc
        .assume_role(&AssumeRole {
            role: role.name.clone(),
            account: None,
            duration_seconds: Some(2),
            session_name: Some("ci".into()),
        })
        .unwrap();
    assert!(session.access_key_id.is_temporary() && session.expiration.is_some());
    let sc = client_for(&d.endpoint, &session);
    let who = sc.whoami().unwrap();
    assert_eq!(who.account_id, prod.id);
    assert_eq!(
        who.arn,
        format!("arn:spindle:sts::{}:assumed-role/deployer/ci", prod.id)
    );
    assert_eq!(
        sc.get_param("prod", &secret, true).unwrap().value,
        "hunter2"
    );
    let e = err(sc.list_keys("prod"));
    assert_eq!(e.0, 403, "the role grants param:* only");
    denied_ids.push(e.1.request_id);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let e = err(sc.list_params("prod", ""));
    assert_eq!((e.0, e.1.code.as_str()), (401, "ExpiredToken"));
    denied_ids.push(e.1.request_id);

    // Every refused call is in the audit log, marked denied, as the admin sees it.
    let log = admin.audit(None, None, None, Some(10_000)).unwrap();
    for id in &denied_ids {
        let rec = log
            .iter()
            .find(|r| &r.request_id == id)
            .unwrap_or_else(|| panic!("request {id} is not in the audit log"));
        assert_eq!(rec.result, "denied", "{rec:?}");
    }
    // prod sees dev's probes of it; dev's own view doesn't reveal which probes hit a real account.
    let prod_view = prodc.audit(None, None, None, None).unwrap();
    assert!(prod_view
        .iter()
        .any(|r| r.account_id.as_ref() == Some(&dev.id) && r.result == "denied"));
    let dev_view = devc.audit(None, None, None, None).unwrap();
    assert!(dev_view
        .iter()
        .all(|r| r.target_account_id.is_none() || r.target_account_id.as_ref() == Some(&dev.id)));
    let probe_results: BTreeSet<(String, u16)> = dev_view
        .iter()
        .filter(|r| r.action == "account:Describe")
        .map(|r| (r.result.clone(), r.status))
        .collect();
    assert_eq!(probe_results, BTreeSet::from([("denied".to_string(), 404)]));

    // After a restart everything persists, and old signatures can't be replayed.
    let before_accounts = admin.list_accounts().unwrap();
    let before_log = admin.audit(None, None, None, Some(10_000)).unwrap().len();
    assert_eq!(d.stop(), Some(0), "graceful shutdown exits 0");
    d.spawn();
    let admin = d.admin();
    assert_eq!(admin.list_accounts().unwrap(), before_accounts);
    let devc = client_for(&d.endpoint, &dev_key);
    assert_eq!(devc.whoami().unwrap().account_id, dev.id);
    assert_eq!(
        client_for(&d.endpoint, &prod_key)
            .get_param("prod", &secret, true)
            .unwrap()
            .value,
        "hunter2"
    );
    assert_eq!(
        err(client_for(&d.endpoint, &tmp).whoami()).0,
        401,
        "revocation persists"
    );
    assert_eq!(admin.list_deny_rules("dev").unwrap().len(), 1);
    assert_eq!(admin.get_role("prod", "deployer").unwrap(), role);
    assert!(admin.audit(None, None, None, Some(10_000)).unwrap().len() > before_log);
}

/// Raw HTTP, so the test controls every byte the signature covers.
mod raw {
    use super::common::{Daemon, BIN};
    use spindle_auth::{derive_signing_key, sign, RequestParts};
    use spindle_client::CredentialsFile;
    use spindle_model::api::ErrorBody;
    use time::OffsetDateTime;

    struct Signer {
        id: spindle_model::AccessKeyId,
        key: spindle_auth::SigningKey,
        endpoint: String,
    }

    impl Signer {
        fn new(d: &Daemon) -> Self {
            let f = CredentialsFile::load(&d.credentials_file()).unwrap();
            let p = &f.profiles["default"];
            let id = p.access_key_id.clone().unwrap();
            let key = derive_signing_key(&id, p.secret_access_key.as_deref().unwrap());
            Self {
                id,
                key,
                endpoint: d.endpoint.clone(),
            }
        }

        fn auth(&self, method: &str, path: &str, body: &[u8], at: OffsetDateTime) -> String {
            let nonce = hex::encode(rand::random::<[u8; 16]>());
            sign(
                &self.id,
                &self.key,
                &RequestParts {
                    method,
                    path,
                    query: "",
                    body,
                },
                at,
                &nonce,
            )
        }

        fn send(&self, method: &str, path: &str, auth: Option<&str>, body: &[u8]) -> (u16, String) {
            let mut r = ureq::request(method, &format!("{}{path}", self.endpoint));
            if let Some(a) = auth {
                r = r.set("authorization", a);
            }
            let resp = match r.send_bytes(body) {
                Ok(r) => r,
                Err(ureq::Error::Status(_, r)) => r,
                Err(e) => panic!("{e}"),
            };
            let status = resp.status();
            let text = resp.into_string().unwrap();
            if status >= 400 {
                let b: ErrorBody = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("error body {text:?}: {e}"));
                return (status, b.error.code);
            }
            (status, text)
        }
    }

    #[test]
    fn tampered_stale_replayed_and_unsigned_requests_are_refused() {
        let d = Daemon::start(BIN);
        let s = Signer::new(&d);
        let now = OffsetDateTime::now_utc();
        let body = br#"{"name":"dev"}"#;

        let good = s.auth("POST", "/v1/accounts", body, now);
        assert_eq!(
            s.send("POST", "/v1/accounts", Some(&good), br#"{"name":"evil"}"#),
            (401, "SignatureDoesNotMatch".into()),
            "tampered body"
        );
        assert_eq!(
            s.send("POST", "/v1/accounts", Some(&good), body).0,
            201,
            "the untampered request, once"
        );
        assert_eq!(
            s.send("POST", "/v1/accounts", Some(&good), body),
            (401, "SignatureReplayed".into())
        );

        let stale = s.auth("GET", "/v1/accounts", b"", now - time::Duration::minutes(6));
        assert_eq!(
            s.send("GET", "/v1/accounts", Some(&stale), b""),
            (401, "SignatureExpired".into())
        );
        let future = s.auth("GET", "/v1/accounts", b"", now + time::Duration::minutes(6));
        assert_eq!(
            s.send("GET", "/v1/accounts", Some(&future), b""),
            (401, "SignatureExpired".into())
        );
        let other_path = s.auth("GET", "/v1/accounts", b"", now);
        assert_eq!(
            s.send("GET", "/v1/accounts/dev", Some(&other_path), b""),
            (401, "SignatureDoesNotMatch".into())
        );
        assert_eq!(
            s.send("GET", "/v1/accounts", None, b""),
            (401, "MissingAuthentication".into())
        );
        assert_eq!(
            s.send("GET", "/v1/accounts", Some("Bearer abc"), b""),
            (401, "MalformedAuthorization".into())
        );
        let big = vec![b'x'; 3 << 20];
        let auth = s.auth("POST", "/v1/accounts", &big, now);
        assert_eq!(s.send("POST", "/v1/accounts", Some(&auth), &big).0, 413);
        let bad_json = br#"{"name":"ok","colour":1}"#;
        let auth = s.auth("POST", "/v1/accounts", bad_json, now);
        let (status, code) = s.send("POST", "/v1/accounts", Some(&auth), bad_json);
        assert_eq!((status, code.as_str()), (400, "InvalidRequest"));
        assert_eq!(s.send("GET", "/healthz", None, b"").0, 200);
        let (status, metrics) = s.send("GET", "/metrics", None, b"");
        assert_eq!(status, 200);
        assert!(
            metrics.contains("spindle_auth_failures_total{reason=\"SignatureReplayed\"} 1"),
            "{metrics}"
        );
    }
}
