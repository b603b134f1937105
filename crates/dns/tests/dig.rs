//! The server answered by Debian's `dig` (package bind9-dnsutils), on a random loopback port.
//! Each test says `skipped` when `dig` is not installed.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;

use spindle_dns::{Action, Catalog, Change, DnsError, RecordSet, RecordType, ZoneData};

fn dig_missing(test: &str) -> bool {
    let missing = Command::new("dig").arg("-v").output().is_err();
    if missing {
        println!("skipped: {test}: `dig` is not installed (Debian package bind9-dnsutils)");
    }
    missing
}

fn ok(_: &[u8]) -> Result<(), String> {
    Ok(())
}

fn set(name: &str, t: RecordType, values: &[&str]) -> Change {
    Change {
        action: Action::Upsert,
        set: RecordSet {
            name: name.into(),
            rtype: t,
            ttl: 60,
            values: values.iter().map(|v| v.to_string()).collect(),
            alias: None,
        },
    }
}

/// A catalog with `twine.test` and a server for it on a random port.
struct Fixture {
    catalog: Arc<Catalog>,
    addr: SocketAddr,
    rt: tokio::runtime::Runtime,
    _server: Option<spindle_dns::DnsHandle>,
}

impl Fixture {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let catalog = Arc::new(Catalog::new());
        catalog
            .create_zone(
                ZoneData::new("ZTWINE", "twine.test", "111111111111").unwrap(),
                &ok,
            )
            .unwrap();
        use RecordType::*;
        catalog
            .change(
                "ZTWINE",
                &[
                    set("dev.twine.test", A, &["127.1.2.3"]),
                    set("www.twine.test", CNAME, &["dev.twine.test."]),
                    set("out.twine.test", CNAME, &["elsewhere.example."]),
                    set("twine.test", MX, &["10 mail.twine.test."]),
                    set("twine.test", TXT, &["\"v=spf1 -all\""]),
                    set("twine.test", CAA, &["0 issue \"letsencrypt.org\""]),
                    set("_http._tcp.twine.test", SRV, &["1 10 80 dev.twine.test."]),
                    set("v6.twine.test", AAAA, &["2001:db8::1"]),
                    set("*.apps.twine.test", A, &["127.9.9.9"]),
                    set("a.b.deep.twine.test", A, &["127.0.0.7"]),
                    set("3.2.1.127.in-addr.twine.test", PTR, &["dev.twine.test."]),
                ],
                &ok,
            )
            .unwrap();
        let bound = rt
            .block_on(spindle_dns::bind("127.0.0.1:0".parse().unwrap()))
            .unwrap();
        let addr = bound.local_addr();
        let server = rt.block_on(async { bound.serve(catalog.clone()) });
        Fixture {
            catalog,
            addr,
            rt,
            _server: Some(server),
        }
    }

    fn dig(&self, args: &[&str]) -> String {
        let out = Command::new("dig")
            .arg(format!("@{}", self.addr.ip()))
            .args(["-p", &self.addr.port().to_string(), "+time=2", "+tries=1"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn short(&self, name: &str, t: &str) -> String {
        self.dig(&[name, t, "+short"]).trim().to_owned()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _g = self.rt.enter();
        self._server.take();
    }
}

#[test]
fn dig_gets_every_record_type_authoritatively_with_cnames_and_wildcards_followed() {
    if dig_missing("dig_gets_every_record_type") {
        return;
    }
    let f = Fixture::new();
    let cases = [
        ("dev.twine.test", "A", "127.1.2.3"),
        ("DEV.Twine.Test", "A", "127.1.2.3"),
        ("www.twine.test", "A", "dev.twine.test.\n127.1.2.3"),
        ("out.twine.test", "A", "elsewhere.example."),
        ("twine.test", "MX", "10 mail.twine.test."),
        ("twine.test", "TXT", "\"v=spf1 -all\""),
        ("twine.test", "CAA", "0 issue \"letsencrypt.org\""),
        ("twine.test", "NS", "ns1.twine.test."),
        ("_http._tcp.twine.test", "SRV", "1 10 80 dev.twine.test."),
        ("v6.twine.test", "AAAA", "2001:db8::1"),
        ("x.apps.twine.test", "A", "127.9.9.9"),
        ("3.2.1.127.in-addr.twine.test", "PTR", "dev.twine.test."),
    ];
    for (name, t, want) in cases {
        assert_eq!(f.short(name, t), want, "{name} {t}");
    }
    let full = f.dig(&["dev.twine.test", "A"]);
    assert!(full.contains("flags: qr aa"), "authoritative: {full}");
    assert!(
        full.contains("; EDNS: version: 0") && full.contains("udp: 1232"),
        "{full}"
    );
    let other = f.dig(&["example.com", "A"]);
    assert!(other.contains("status: REFUSED"), "{other}");
    let axfr = f.dig(&["twine.test", "AXFR"]);
    assert!(
        !axfr.contains("127.1.2.3"),
        "no transfer without a grant: {axfr}"
    );
}

#[test]
fn nxdomain_and_nodata_differ_and_both_carry_the_soa() {
    if dig_missing("nxdomain_and_nodata_differ") {
        return;
    }
    let f = Fixture::new();
    let nx = f.dig(&["nope.twine.test", "A"]);
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
    assert!(
        nx.contains("AUTHORITY: 1") && nx.contains("SOA\tns1.twine.test."),
        "{nx}"
    );
    assert!(
        nx.contains("twine.test.\t\t300\tIN\tSOA"),
        "negative TTL is the minimum: {nx}"
    );
    for (name, t) in [
        ("dev.twine.test", "AAAA"),
        ("deep.twine.test", "A"),
        ("b.deep.twine.test", "TXT"),
    ] {
        let nodata = f.dig(&[name, t]);
        assert!(nodata.contains("status: NOERROR"), "{name} {t}: {nodata}");
        assert!(
            nodata.contains("ANSWER: 0, AUTHORITY: 1"),
            "{name} {t}: {nodata}"
        );
    }
    let chased = f.dig(&["gone.twine.test", "A"]);
    assert!(chased.contains("status: NXDOMAIN"));
}

#[test]
fn a_bad_batch_changes_nothing_names_the_bad_record_and_good_ones_raise_the_serial() {
    if dig_missing("a_bad_batch_changes_nothing") {
        return;
    }
    let f = Fixture::new();
    let serial = |f: &Fixture| -> u32 {
        f.short("twine.test", "SOA")
            .split_whitespace()
            .nth(2)
            .unwrap()
            .parse()
            .unwrap()
    };
    let s0 = serial(&f);
    let e = f
        .catalog
        .change(
            "ZTWINE",
            &[
                set("dev.twine.test", RecordType::A, &["127.4.4.4"]),
                set("new.twine.test", RecordType::A, &["127.0.0.1"]),
                set("bad.twine.test", RecordType::MX, &["mail.twine.test."]),
            ],
            &ok,
        )
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DnsError::Refused { .. }));
    assert!(
        msg.contains("Changes[2] (bad.twine.test MX): ResourceRecords[0]: `mail.twine.test.` is not `PREFERENCE EXCHANGE`"),
        "{msg}"
    );
    assert_eq!(
        f.short("dev.twine.test", "A"),
        "127.1.2.3",
        "first change not applied"
    );
    assert!(f.dig(&["new.twine.test", "A"]).contains("NXDOMAIN"));
    assert_eq!(serial(&f), s0);
    f.catalog
        .change(
            "ZTWINE",
            &[set("dev.twine.test", RecordType::A, &["127.4.4.4"])],
            &ok,
        )
        .unwrap();
    assert_eq!(f.short("dev.twine.test", "A"), "127.4.4.4");
    assert_eq!(serial(&f), s0 + 1);
}

#[test]
fn an_answer_too_big_for_udp_is_truncated_and_dig_retries_over_tcp() {
    if dig_missing("an_answer_too_big_for_udp") {
        return;
    }
    let f = Fixture::new();
    let many: Vec<String> = (1..=60).map(|i| format!("127.0.1.{i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    f.catalog
        .change(
            "ZTWINE",
            &[set("big.twine.test", RecordType::A, &refs)],
            &ok,
        )
        .unwrap();
    // 60 A records are ~1,000 bytes: over 512 without EDNS.
    let udp = f.dig(&["big.twine.test", "A", "+noedns", "+ignore"]);
    assert!(udp.contains("flags: qr aa tc"), "{udp}");
    assert!(udp.contains("ANSWER: 0"), "{udp}");
    let retried = f.dig(&["big.twine.test", "A", "+noedns"]);
    assert!(retried.contains("retrying in TCP mode"), "{retried}");
    assert!(retried.contains("ANSWER: 60"), "{retried}");
    // With EDNS and a 1232-byte buffer the same answer fits in UDP.
    let edns = f.dig(&["big.twine.test", "A", "+bufsize=1232", "+ignore"]);
    assert!(
        edns.contains("ANSWER: 60") && !edns.contains(" tc"),
        "{edns}"
    );
    let tcp = f.dig(&["big.twine.test", "A", "+tcp"]);
    assert!(tcp.contains("ANSWER: 60"), "{tcp}");
}
