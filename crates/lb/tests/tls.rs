//! HTTPS listeners: HTTP/2 through ALPN, HTTP/1.1 otherwise, and h2c on plain listeners.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use spindle_lb::*;

async fn tls_client(
    addr: std::net::SocketAddr,
    ca: &rcgen::Certificate,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .unwrap()
}

#[tokio::test]
async fn https_serves_h2_and_http1_via_alpn() {
    let a = Backend::start("a", Mode::Good).await;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let mut l = http_listener("app");
    l.protocol = ListenerProtocol::Https {
        cert_pem: cert.cert.pem(),
        key_pem: cert.key_pair.serialize_pem(),
    };
    let (lb, addr) = start_lb(LbConfig {
        listeners: vec![l],
        target_groups: vec![group("app", &[&a])],
        client: ClientSettings::default(),
    })
    .await;
    wait_healthy(&lb, &[&a]).await;

    let tls = tls_client(addr, &cert.cert, b"h2").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    for _ in 0..3 {
        let req = http::Request::get("https://localhost/x")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = tx.send_request(req).await.unwrap();
        assert_eq!(resp.version(), http::Version::HTTP_2);
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["echo-x-forwarded-proto"], "https");
        assert_eq!(resp.headers()["echo-host"], "localhost");
        assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "a");
    }

    let tls = tls_client(addr, &cert.cert, b"http/1.1").await;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/")
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = tx.send_request(req).await.unwrap();
    assert_eq!(
        (resp.version(), resp.status().as_u16()),
        (http::Version::HTTP_11, 200)
    );
}

#[tokio::test]
async fn plain_listener_accepts_h2c_prior_knowledge() {
    let a = Backend::start("a", Mode::Good).await;
    let (lb, addr) = start_lb(LbConfig {
        listeners: vec![http_listener("app")],
        target_groups: vec![group("app", &[&a])],
        client: ClientSettings::default(),
    })
    .await;
    wait_healthy(&lb, &[&a]).await;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("http://h2c.example/")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = tx.send_request(req).await.unwrap();
    assert_eq!(
        (resp.version(), resp.status().as_u16()),
        (http::Version::HTTP_2, 200)
    );
}
