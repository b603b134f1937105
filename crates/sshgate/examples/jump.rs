//! The jump host alone, for `bench/ssh.sh`: a fresh CA signs `DIR/id.pub` (principal
//! `PRINCIPAL`) into `DIR/id-cert.pub` and writes `DIR/ca.pub` for the upstream sshd's
//! `TrustedUserCAKeys`; the gate listens on 127.0.0.1 (port in `DIR/gate.port`) and forwards
//! to loopback only. Runs until killed (the bench stops it by its PID).
//!
//!     cargo run -p spindle-sshgate --example jump -- DIR PRINCIPAL

use spindle_sshgate::ssh_key::{Algorithm, PrivateKey};
use spindle_sshgate::{Attempt, Backend, BoxFuture, CertRequest, Gate, Identity, UserCa};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;

struct Loopback {
    ca: String,
}

impl Backend for Loopback {
    fn authority(&self, fp: &str) -> Option<String> {
        (fp == self.ca).then(|| "bench".to_string())
    }
    fn open<'a>(
        &'a self,
        _who: &'a Identity,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<TcpStream, String>> {
        Box::pin(async move {
            if host != "127.0.0.1" {
                return Err("bench: loopback only".into());
            }
            let s = TcpStream::connect((host, port))
                .await
                .map_err(|e| e.to_string())?;
            let _ = s.set_nodelay(true);
            Ok(s)
        })
    }
    fn record(&self, a: Attempt) {
        if !a.allowed {
            eprintln!("jump: refused: {}", a.reason);
        }
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(principal)) = (args.next(), args.next()) else {
        eprintln!("usage: jump DIR PRINCIPAL");
        std::process::exit(2);
    };
    let dir = PathBuf::from(dir);
    let ca = UserCa::generate();
    let public = std::fs::read_to_string(dir.join("id.pub")).expect("DIR/id.pub");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let cert = ca
        .sign(&CertRequest {
            public_key: &public,
            key_id: "bench",
            principals: &[principal],
            serial: 1,
            valid_after: now - 60,
            ttl_secs: 3600,
        })
        .expect("sign");
    std::fs::write(dir.join("id-cert.pub"), cert.to_openssh().unwrap() + "\n").unwrap();
    std::fs::write(dir.join("ca.pub"), ca.public_line() + "\n").unwrap();
    let host = PrivateKey::random(&mut rand::rngs::OsRng, Algorithm::Ed25519).unwrap();
    let backend = Arc::new(Loopback {
        ca: ca.fingerprint(),
    });
    let gate = Gate::start("127.0.0.1:0", host, backend)
        .await
        .expect("listen");
    std::fs::write(dir.join("gate.port"), gate.local_addr.port().to_string()).unwrap();
    std::future::pending::<()>().await;
}
