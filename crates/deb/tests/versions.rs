//! Our version parsing and ordering checked against the real `dpkg --compare-versions`.

mod common;

use std::cmp::Ordering;
use std::process::Command;

use common::run;
use proptest::prelude::*;
use spindle_deb::version::Version;

/// dpkg's verdict on `a` vs `b`, failing the test if dpkg warns about either version.
fn dpkg_order(a: &str, b: &str) -> Ordering {
    let ask = |op: &str| {
        let out = run(Command::new("dpkg").args(["--compare-versions", a, op, b]));
        assert!(
            out.stderr.is_empty(),
            "dpkg complained about {a:?} / {b:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        match out.status.code() {
            Some(0) => true,
            Some(1) => false,
            other => panic!("dpkg --compare-versions {a} {op} {b} exited {other:?}"),
        }
    };
    if ask("lt") {
        Ordering::Less
    } else if ask("eq") {
        Ordering::Equal
    } else {
        Ordering::Greater
    }
}

/// Whether dpkg rejects or warns about a version.
fn dpkg_objects_to(v: &str) -> bool {
    let out = run(Command::new("dpkg").args(["--compare-versions", v, "eq", v]));
    !out.stderr.is_empty() || out.status.code() != Some(0)
}

fn check(a: &str, b: &str) {
    let ours = Version::parse(a).unwrap().cmp(&Version::parse(b).unwrap());
    assert_eq!(ours, dpkg_order(a, b), "{a} vs {b}");
}

#[test]
fn known_cases_agree_with_dpkg() {
    let cases = [
        ("1.0", "1.0"),
        ("1.0", "0:1.0"),
        ("1.0", "1.0-0"),
        ("1.0~rc1", "1.0"),
        ("1.0~~", "1.0~~a"),
        ("1.0~~a", "1.0~"),
        ("1.0~", "1.0"),
        ("1.0", "1.0a"),
        ("1.0a", "1.0+"),
        ("1.0+", "1.0."),
        ("1.0.", "1.0.1"),
        ("1:0.1", "2.0"),
        ("1.2.10", "1.2.9"),
        ("1.002", "1.2"),
        ("1.0-1", "1.0-1ubuntu1"),
        ("1.0-1ubuntu1", "1.0-1+deb12u1"),
        ("2.30-5", "2.30-10"),
        ("7.6p2-4", "7.6-0"),
        ("1.0.3-3", "1.0-1"),
        ("1.1.6r2-2", "1.1.6r-1"),
        ("98.1p5-1", "98.1-pre2-b6-2"),
        ("1:3.0.5-2", "1:3.0.5.1"),
        ("3.0~rc1-1", "3.0-1"),
        ("1:2:3", "1:2:4"),
        ("0", "00"),
        ("1a", "1A"),
        ("1.0-1-1", "1.0-1"),
        ("2147483647:1", "1:1"),
        ("1+dfsg-1", "1-1"),
        ("1.0-1~bpo12+1", "1.0-1"),
    ];
    for (a, b) in cases {
        check(a, b);
        check(b, a);
    }
}

#[test]
fn rejected_versions_are_those_dpkg_objects_to() {
    // dpkg --compare-versions takes "" to mean "no version", so the empty string is only
    // checked on our side (dpkg's parser rejects it everywhere else).
    assert!(Version::parse("").is_err());
    let cases = [
        ":1.0",
        "a:1.0",
        "-1:1.0",
        "1:",
        "1.0-",
        "-1",
        "a1.0",
        "~1",
        "1.0_1",
        "1:1.0-1:2",
        "1.0-a_b",
        "1 0",
        "1.0/2",
        "99999999999:1",
    ];
    for v in cases {
        assert!(Version::parse(v).is_err(), "we accepted {v:?}");
        // dpkg would read a leading `-` as an option, so those are only checked on our side.
        if !v.starts_with('-') {
            assert!(dpkg_objects_to(v), "dpkg accepts {v:?} silently");
        }
    }
}

/// Version strings biased towards the characters that decide orderings, built so that they
/// are valid (`:` only with an epoch, `-` inside upstream only with a revision).
fn version() -> impl Strategy<Value = String> {
    let epoch = prop_oneof![3 => Just(None), 1 => (0u32..3).prop_map(Some)];
    let piece = "[0-9]{0,2}[a-cA.+~]{0,2}[0-9]{0,2}";
    let revision = prop_oneof![1 => Just(None), 1 => "[0-9a-b.+~]{1,4}".prop_map(Some)];
    (epoch, "[0-9]", piece, piece, revision).prop_map(|(epoch, first, p1, p2, revision)| {
        let mut upstream = format!("{first}{p1}{p2}");
        if epoch.is_some() && p1.len() % 3 == 1 {
            upstream.insert(1, ':');
        }
        if revision.is_some() && p2.len() % 2 == 1 {
            upstream.insert(1, '-');
        }
        let mut v = String::new();
        if let Some(e) = epoch {
            v.push_str(&format!("{e}:"));
        }
        v.push_str(&upstream);
        if let Some(r) = revision {
            v.push('-');
            v.push_str(&r);
        }
        v
    })
}

/// Pairs that often share a prefix, so comparisons reach the interesting later parts.
fn version_pair() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        (version(), version()),
        (version(), "[0-9a-b.+~]{0,3}", "[0-9a-b.+~]{0,3}").prop_map(|(base, s1, s2)| {
            // Appending to the last part keeps both valid: it lands in the revision if
            // there is one, otherwise in the upstream part.
            (format!("{base}{s1}"), format!("{base}{s2}"))
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn ordering_agrees_with_dpkg((a, b) in version_pair()) {
        let va = Version::parse(&a).unwrap();
        let vb = Version::parse(&b).unwrap();
        prop_assert_eq!(va.cmp(&vb), dpkg_order(&a, &b), "{} vs {}", a, b);
        // Rendering keeps the order.
        prop_assert_eq!(Version::parse(&va.to_string()).unwrap().cmp(&vb), va.cmp(&vb));
    }
}
