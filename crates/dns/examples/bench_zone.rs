//! The DNS engine serving a generated zone, for `bench/dns.sh`.
//!
//! `bench_zone ZONE RECORDS PORT ZONEFILE` builds `ZONE` with `RECORDS` A records
//! (`h0.ZONE` … ), writes the same zone as a zone file for the peer, serves it on
//! 127.0.0.1:PORT (UDP and TCP), and prints `ready`. On a line `batch N` on stdin it applies
//! one change batch of N new records and prints how long until a UDP query for the last of
//! them is answered (`batch_live_ms X`), and the process's RSS before and after; EOF stops it.

use std::io::{BufRead, Write};
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spindle_dns::hickory_proto::op::{Message, Query};
use spindle_dns::hickory_proto::rr::{Name, RecordType as WireType};
use spindle_dns::{Action, Catalog, Change, RecordSet, RecordType, ZoneData};

fn a(name: String, i: usize) -> Change {
    Change {
        action: Action::Create,
        set: RecordSet {
            name,
            rtype: RecordType::A,
            ttl: 300,
            values: vec![format!(
                "10.{}.{}.{}",
                (i >> 16) & 255,
                (i >> 8) & 255,
                i & 255
            )],
            alias: None,
        },
    }
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, zone, n, port, zonefile] = &args[..] else {
        eprintln!("usage: bench_zone ZONE RECORDS PORT ZONEFILE");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("RECORDS is a number");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ok = |_: &[u8]| Ok(());
    let rss0 = rss_kb();
    let catalog = Arc::new(Catalog::new());
    catalog
        .create_zone(
            ZoneData::new("ZBENCH", zone, "000000000000").expect("zone"),
            &ok,
        )
        .expect("create");
    let batch: Vec<Change> = (0..n).map(|i| a(format!("h{i}.{zone}"), i)).collect();
    catalog.change("ZBENCH", &batch, &ok).expect("records");
    let rss_zone = rss_kb();
    let mut f = std::fs::File::create(zonefile).expect("zone file");
    let snap = catalog.snapshot();
    let data = snap.zone("ZBENCH").expect("zone");
    for set in data.record_sets() {
        for v in &set.values {
            writeln!(f, "{}. {} IN {} {}", set.name, set.ttl, set.rtype, v).expect("write");
        }
    }
    drop(f);
    let bound = rt
        .block_on(spindle_dns::bind(
            format!("127.0.0.1:{port}").parse().expect("port"),
        ))
        .expect("bind");
    let addr = bound.local_addr();
    let _server = rt.block_on(async { bound.serve(catalog.clone()) });
    println!("ready rss_kb_before_zone {rss0} rss_kb_with_zone {rss_zone}");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("client socket");
    sock.set_read_timeout(Some(Duration::from_millis(200))).ok();
    let mut round = 0;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let Some(k) = line
            .strip_prefix("batch ")
            .and_then(|k| k.trim().parse::<usize>().ok())
        else {
            continue;
        };
        round += 1;
        let batch: Vec<Change> = (0..k)
            .map(|i| a(format!("b{round}-{i}.{zone}"), i))
            .collect();
        let last = format!("b{round}-{}.{zone}.", k - 1);
        let mut q = Message::new();
        q.set_id(7).add_query(Query::query(
            Name::from_ascii(&last).expect("name"),
            WireType::A,
        ));
        let q = q.to_vec().expect("query");
        let t0 = Instant::now();
        catalog.change("ZBENCH", &batch, &ok).expect("batch");
        let mut buf = [0u8; 1500];
        loop {
            sock.send_to(&q, addr).expect("send");
            if let Ok(len) = sock.recv(&mut buf) {
                if Message::from_vec(&buf[..len]).is_ok_and(|m| !m.answers().is_empty()) {
                    break;
                }
            }
        }
        println!(
            "batch_live_ms {:.2} rss_kb {}",
            t0.elapsed().as_secs_f64() * 1000.0,
            rss_kb()
        );
    }
}
