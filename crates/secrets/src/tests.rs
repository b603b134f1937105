use super::*;
use spindle_runtime::DocError;
use std::sync::atomic::{AtomicBool, Ordering};

/// A reversible stand-in for the daemon's AES-GCM sealer (unit tests of the bookkeeping
/// only; the daemon's acceptance test greps a real data dir).
struct HexSeal;

impl Seal for HexSeal {
    fn seal(&self, plain: &str) -> String {
        let hex: String = plain.bytes().map(|b| format!("{b:02x}")).collect();
        format!("sealed:{hex}")
    }
    fn open(&self, sealed: &str) -> Result<String, String> {
        let hex = sealed.strip_prefix("sealed:").ok_or("not sealed")?;
        let bytes: Result<Vec<u8>, _> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
            .collect();
        String::from_utf8(bytes.map_err(|e| e.to_string())?).map_err(|e| e.to_string())
    }
}

/// A document whose saves can be made to fail.
#[derive(Debug, Default)]
struct Doc2 {
    body: Mutex<Option<Vec<u8>>>,
    fail: AtomicBool,
}

impl StateDoc for Doc2 {
    fn name(&self) -> String {
        "test".into()
    }
    fn load(&self) -> Result<Option<Vec<u8>>, DocError> {
        Ok(self.body.lock().unwrap().clone())
    }
    fn save(&self, body: &[u8]) -> Result<(), DocError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(DocError::new("test", "disk full"));
        }
        *self.body.lock().unwrap() = Some(body.to_vec());
        Ok(())
    }
}

fn account() -> AccountId {
    AccountId::parse("123456789012").unwrap()
}

fn new(name: &str, value: ValueSource) -> NewSecret {
    NewSecret {
        name: name.into(),
        description: "d".into(),
        kms_key_id: None,
        tags: BTreeMap::new(),
        value,
        token: Some("tok-1".into()),
    }
}

fn stages(s: &Secrets, id: &str) -> Vec<Vec<String>> {
    s.describe(&account(), id)
        .unwrap()
        .versions
        .into_iter()
        .map(|v| v.stages)
        .collect()
}

#[test]
fn versions_move_their_stages_and_values_stay_sealed_in_the_document() {
    let doc = Arc::new(Doc2::default());
    let s = Secrets::open(Some(doc.clone()), Arc::new(HexSeal), "us-east-1").unwrap();
    let a = account();
    let info = s
        .create(
            &a,
            new("db/master", ValueSource::Generate(Rules::default())),
        )
        .unwrap();
    assert!(
        info.arn
            .starts_with("arn:aws:secretsmanager:us-east-1:123456789012:secret:db/master-")
            && info.arn.len()
                == "arn:aws:secretsmanager:us-east-1:123456789012:secret:db/master-".len() + 6,
        "{}",
        info.arn
    );
    let (_, first) = s.get_value(&a, &info.arn, &Select::default()).unwrap();
    assert_eq!(first.len(), 32);
    // Same token again: the same secret; another token: a conflict.
    assert_eq!(
        s.create(&a, new("db/master", ValueSource::Given("x".into())))
            .unwrap()
            .arn,
        info.arn
    );
    let mut other = new("db/master", ValueSource::Given("x".into()));
    other.token = None;
    assert_eq!(
        s.create(&a, other),
        Err(SecretsError::Exists("db/master".into()))
    );

    let v2 = s.put_value(&a, "db/master", "second").unwrap();
    assert_eq!(stages(&s, "db/master"), [vec![PREVIOUS], vec![CURRENT]]);
    let v3 = s.rotate(&a, "db/master").unwrap();
    assert_eq!(
        stages(&s, "db/master"),
        [
            vec![],
            vec![PREVIOUS.to_string()],
            vec![CURRENT.to_string()]
        ]
    );
    let (v, prev) = s
        .get_value(
            &a,
            "db/master",
            &Select {
                stage: Some(PREVIOUS.into()),
                ..Select::default()
            },
        )
        .unwrap();
    assert_eq!((v.id.as_str(), prev.as_str()), (v2.as_str(), "second"));
    let (_, third) = s.get_value(&a, "db/master", &Select::default()).unwrap();
    assert_ne!(third, first);
    let by_id = Select {
        version_id: Some(v3.clone()),
        ..Select::default()
    };
    assert_eq!(s.get_value(&a, "db/master", &by_id).unwrap().1, third);

    let body = String::from_utf8(doc.body.lock().unwrap().clone().unwrap()).unwrap();
    for plain in [&first, "second", &third] {
        assert!(!body.contains(plain), "{plain} in clear in {body}");
    }
    // Reopened from the document: the same secrets.
    let again = Secrets::open(Some(doc.clone()), Arc::new(HexSeal), "us-east-1").unwrap();
    assert_eq!(again.get_value(&a, "db/master", &by_id).unwrap().1, third);

    // Unlabeled versions beyond the limit are dropped.
    for i in 0..10 {
        s.put_value(&a, "db/master", &format!("v{i}")).unwrap();
    }
    let n = s.describe(&a, "db/master").unwrap().versions.len();
    assert_eq!(n, KEEP_UNLABELED + 2);
}

#[test]
fn a_failed_save_changes_nothing() {
    let doc = Arc::new(Doc2::default());
    let s = Secrets::open(Some(doc.clone()), Arc::new(HexSeal), "us-east-1").unwrap();
    let a = account();
    s.create(&a, new("app", ValueSource::Given("one".into())))
        .unwrap();
    doc.fail.store(true, Ordering::SeqCst);
    assert!(matches!(
        s.put_value(&a, "app", "two"),
        Err(SecretsError::Backend(_))
    ));
    assert!(s.rotate(&a, "app").is_err());
    assert!(s.delete(&a, "app").is_err());
    assert_eq!(s.get_value(&a, "app", &Select::default()).unwrap().1, "one");
    assert_eq!(s.describe(&a, "app").unwrap().versions.len(), 1);
}

#[test]
fn refusals_name_what_is_wrong() {
    let s = Secrets::open(None, Arc::new(HexSeal), "us-east-1").unwrap();
    let a = account();
    s.create(
        &a,
        new("given", ValueSource::Given("{\"user\":\"u\"}".into())),
    )
    .unwrap();
    s.create(&a, new("plain", ValueSource::Given("text".into())))
        .unwrap();
    let fields: BTreeMap<String, serde_json::Value> = [
        ("host".to_string(), serde_json::json!("10.0.0.5")),
        ("port".to_string(), serde_json::json!(5432)),
    ]
    .into_iter()
    .collect();
    s.merge_fields(&a, "given", &fields).unwrap();
    let (_, merged) = s.get_value(&a, "given", &Select::default()).unwrap();
    assert_eq!(merged, r#"{"host":"10.0.0.5","port":5432,"user":"u"}"#);
    let cases: Vec<(Result<String, SecretsError>, &str)> = vec![
        (s.rotate(&a, "given"), "has no generation rules"),
        (
            s.put_value(&a, "missing", "x"),
            "secret `missing` not found",
        ),
        (s.put_value(&a, "given", ""), "1 to 65536 bytes, got 0"),
        (s.merge_fields(&a, "plain", &fields), "not a JSON object"),
        (
            s.create(&a, new("bad name!", ValueSource::Given("x".into())))
                .map(|i| i.arn),
            "Name `bad name!`: may only contain",
        ),
        (
            s.get_value(
                &a,
                "given",
                &Select {
                    stage: Some("NOPE".into()),
                    ..Select::default()
                },
            )
            .map(|v| v.1),
            "has no version with the stage `NOPE`",
        ),
    ];
    for (got, want) in cases {
        let e = got.unwrap_err().to_string();
        assert!(e.contains(want), "{e} vs {want}");
    }
    assert!(s.delete(&a, "plain").unwrap());
    assert!(!s.delete(&a, "plain").unwrap());
    assert_eq!(s.list(&a).len(), 1);
}
