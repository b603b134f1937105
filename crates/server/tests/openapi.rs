//! `docs/openapi.json` must describe exactly the routes the daemon serves, with the action each
//! one authorizes, and every schema it references must exist.

use serde_json::Value;
use std::collections::BTreeSet;

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn openapi_matches_the_route_table() {
    let spec = spec();
    let mut documented = BTreeSet::new();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let action = op
                .get("x-spindle-action")
                .unwrap_or_else(|| panic!("{method} {path}: no x-spindle-action"));
            documented.insert((
                method.to_uppercase(),
                path.clone(),
                action.as_str().map(str::to_owned),
            ));
        }
    }
    let served: BTreeSet<_> = spindle_server::route_table()
        .into_iter()
        .map(|r| {
            (
                r.method.to_string(),
                r.path.to_owned(),
                r.action.map(|a| a.as_str().to_owned()),
            )
        })
        .collect();
    let missing: Vec<_> = served.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "served but not documented: {missing:#?}\ndocumented but not served: {stale:#?}"
    );
}

#[test]
fn every_schema_reference_resolves() {
    let spec = spec();
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    let mut refs = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| walk(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(&spec, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected ref {r}"));
        assert!(schemas.contains_key(name), "dangling ref {r}");
    }
}
