//! Random bytes to the listener must never take it down.

mod common;

use std::time::Duration;

use common::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use spindle_lb::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn prefixes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2048),
        // Mostly-valid requests with random damage reach deeper into the parser.
        (proptest::collection::vec(any::<u8>(), 0..64), 0usize..80).prop_map(|(junk, at)| {
            let mut req = b"POST /x?y=1 HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\nx-tenant-id: t\r\n\r\nhello".to_vec();
            let at = at.min(req.len());
            req.splice(at..at, junk);
            req
        }),
        // HTTP/2 preface followed by random frames.
        proptest::collection::vec(any::<u8>(), 0..512).prop_map(|tail| {
            let mut v = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
            v.extend(tail);
            v
        }),
    ]
}

#[test]
fn random_bytes_do_not_crash_the_listener() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let a = Backend::start("a", Mode::Good).await;
        let mut tg = group("app", &[&a]);
        tg.isolation = Some(IsolationConfig {
            tenant_key: TenantKey::Header("x-tenant-id".into()),
            scheduler: Default::default(),
        });
        let mut cfg = LbConfig {
            listeners: vec![http_listener("app")],
            target_groups: vec![tg],
            client: ClientSettings::default(),
        };
        cfg.client.header_read_timeout = Duration::from_millis(200);
        cfg.client.body_read_timeout = Duration::from_millis(200);
        let (lb, addr) = start_lb(cfg).await;
        wait_healthy(&lb, &[&a]).await;
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: 200,
            ..ProptestConfig::default()
        });
        let strategy = prefixes();
        for _ in 0..200 {
            let bytes = strategy.new_tree(&mut runner).unwrap().current();
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let _ = s.write_all(&bytes).await;
            let mut buf = [0u8; 512];
            let _ = tokio::time::timeout(Duration::from_millis(20), s.read(&mut buf)).await;
        }
        // Still serving.
        let r = get(addr, "x", "/").await;
        assert_eq!(r.status, 200);
        drop(lb);
    });
}
