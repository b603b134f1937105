//! The I/O edge: one UDP socket and one TCP listener on the same address, answering from the
//! catalog's current snapshot through [`crate::answer::respond`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

use crate::answer::{respond_with, Transport};
use crate::catalog::{Catalog, View};
use crate::hostnames::HostnamesCell;
use crate::DnsError;

/// How long a TCP connection may sit idle between queries.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// UDP receive tasks sharing the socket.
const UDP_TASKS: usize = 2;

/// The bound sockets, not serving yet.
pub struct Bound {
    udp: UdpSocket,
    tcp: TcpListener,
    addr: SocketAddr,
    view: View,
    hostnames: Option<HostnamesCell>,
}

/// Binds UDP and TCP on `addr`. Port 0 picks one free port for both.
pub async fn bind(addr: SocketAddr) -> Result<Bound, DnsError> {
    let err = |source| DnsError::Bind { addr, source };
    // With port 0 the kernel picks the UDP port; TCP on the same number may be taken, so try
    // a few picks before giving up.
    let tries = if addr.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let udp = UdpSocket::bind(addr).await.map_err(err)?;
        let local = udp.local_addr().map_err(err)?;
        match TcpListener::bind(local).await {
            Ok(tcp) => {
                return Ok(Bound {
                    udp,
                    tcp,
                    addr: local,
                    view: View::Public,
                    hostnames: None,
                })
            }
            Err(e) => last = Some(e),
        }
    }
    Err(err(last.unwrap_or_else(|| std::io::Error::other("no port"))))
}

impl Bound {
    /// Sockets someone else bound (a VPC's resolver address, bound inside the VPC's router
    /// namespace), answering as `view` sees the zones. Must be called on a tokio runtime.
    pub fn from_std(
        udp: std::net::UdpSocket,
        tcp: std::net::TcpListener,
        view: View,
    ) -> Result<Bound, DnsError> {
        let addr = udp
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let err = |source| DnsError::Bind { addr, source };
        udp.set_nonblocking(true).map_err(err)?;
        tcp.set_nonblocking(true).map_err(err)?;
        Ok(Bound {
            udp: UdpSocket::from_std(udp).map_err(err)?,
            tcp: TcpListener::from_std(tcp).map_err(err)?,
            addr,
            view,
            hostnames: None,
        })
    }

    /// Also answers the host names of a VPC's instances, as `hostnames` holds them at each
    /// query (see [`crate::VpcHostnames`]).
    pub fn with_hostnames(mut self, hostnames: HostnamesCell) -> Bound {
        self.hostnames = Some(hostnames);
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts answering on the current runtime. The tasks stop when the handle is dropped.
    pub fn serve(self, catalog: Arc<Catalog>) -> DnsHandle {
        let udp = Arc::new(self.udp);
        let asker = Arc::new(Asker {
            view: self.view,
            hostnames: self.hostnames,
        });
        let mut tasks = Vec::new();
        for _ in 0..UDP_TASKS {
            let (udp, catalog, asker) = (udp.clone(), catalog.clone(), asker.clone());
            tasks.push(tokio::spawn(async move {
                udp_loop(&udp, &catalog, &asker).await
            }));
        }
        let tcp = self.tcp;
        tracing::info!(addr = %self.addr, view = ?asker.view, "dns server listening (udp and tcp)");
        tasks.push(tokio::spawn(
            async move { tcp_loop(tcp, catalog, asker).await },
        ));
        DnsHandle {
            tasks,
            addr: self.addr,
        }
    }
}

/// The running server; dropping it stops it.
pub struct DnsHandle {
    tasks: Vec<JoinHandle<()>>,
    addr: SocketAddr,
}

impl DnsHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for DnsHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Who the sockets answer for: the view of the zones, and a VPC's host names.
struct Asker {
    view: View,
    hostnames: Option<HostnamesCell>,
}

impl Asker {
    fn respond(&self, catalog: &Catalog, req: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let hostnames = self.hostnames.as_ref().and_then(HostnamesCell::get);
        respond_with(
            &catalog.snapshot(),
            &self.view,
            hostnames.as_deref(),
            req,
            transport,
        )
    }
}

async fn udp_loop(sock: &UdpSocket, catalog: &Catalog, asker: &Asker) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP errors from earlier sends surface here on Linux; keep serving.
                tracing::debug!(error = %e, "dns udp receive");
                continue;
            }
        };
        if let Some(out) = asker.respond(catalog, &buf[..n], Transport::Udp) {
            let _ = sock.send_to(&out, peer).await;
        }
    }
}

async fn tcp_loop(listener: TcpListener, catalog: Arc<Catalog>, asker: Arc<Asker>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (catalog, asker) = (catalog.clone(), asker.clone());
        tokio::spawn(async move {
            let _ = tcp_conn(stream, &catalog, &asker).await;
        });
    }
}

async fn tcp_conn(mut s: TcpStream, catalog: &Catalog, asker: &Asker) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, s.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return Ok(()),
        }
        buf.resize(u16::from_be_bytes(len) as usize, 0);
        tokio::time::timeout(TCP_IDLE, s.read_exact(&mut buf))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        let Some(out) = asker.respond(catalog, &buf, Transport::Tcp) else {
            return Ok(());
        };
        let mut framed = Vec::with_capacity(out.len() + 2);
        framed.extend_from_slice(&(out.len() as u16).to_be_bytes());
        framed.extend_from_slice(&out);
        s.write_all(&framed).await?;
    }
}
