//! Connections to targets: the [`UpstreamConnector`] plug-in point and a keep-alive pool.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A boxed future, as connectors return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Opens TCP connections to targets. The daemon plugs in one that creates its sockets inside a
/// VPC's network namespace; a socket keeps the namespace it was created in, so the returned
/// stream works from any thread.
pub trait UpstreamConnector: Send + Sync + 'static {
    /// Connects to `addr`. The caller applies the connect timeout.
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<TcpStream>>;
}

/// Plain TCP in the daemon's own namespace, with `TCP_NODELAY`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpConnector;

impl UpstreamConnector for TcpConnector {
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<TcpStream>> {
        Box::pin(async move {
            let s = TcpStream::connect(addr).await?;
            // A target that already reset the connection fails here; that is the request's
            // failure to report, not the connect's.
            let _ = s.set_nodelay(true);
            Ok(s)
        })
    }
}

/// The body sent to targets.
pub type UpstreamBody = UnsyncBoxBody<Bytes, crate::proxy::BodyError>;

/// Why a request to a target failed before a response head arrived.
#[derive(Debug)]
pub(crate) enum SendError {
    Connect(io::Error),
    ConnectTimeout,
    /// The connection failed after the request may have been sent.
    Http(hyper::Error),
}

thread_local! {
    static SHARD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Marks the current thread as the owner of pool shard `i`.
pub(crate) fn set_shard(i: usize) {
    SHARD.with(|s| s.set(i));
}

/// Idle keep-alive connections to one target, sharded per I/O thread so a connection is
/// reused on the thread whose runtime drives it.
pub(crate) struct Pool {
    addr: SocketAddr,
    max_idle: usize,
    idle: Vec<Mutex<Vec<SendRequest<UpstreamBody>>>>,
}

impl Pool {
    pub(crate) fn new(addr: SocketAddr, max_idle: usize, shards: usize) -> Self {
        Pool {
            addr,
            max_idle: max_idle.div_ceil(shards.max(1)),
            idle: (0..shards.max(1)).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    fn shard(&self) -> &Mutex<Vec<SendRequest<UpstreamBody>>> {
        &self.idle[SHARD.with(|s| s.get()) % self.idle.len()]
    }

    /// Returns a connection whose last response was read to the end.
    pub(crate) fn put(&self, sender: SendRequest<UpstreamBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.shard().lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(sender);
        }
    }

    fn take(&self) -> Option<SendRequest<UpstreamBody>> {
        self.shard().lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    /// Closes all idle connections.
    pub(crate) fn clear(&self) {
        for shard in &self.idle {
            shard.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }

    /// Sends `req`, reusing an idle connection when one works, else opening one. A pooled
    /// connection that turns out closed before the request went out is skipped, so keep-alive
    /// races with the target don't reach the client.
    pub(crate) async fn send(
        &self,
        connector: &dyn UpstreamConnector,
        connect_timeout: Duration,
        mut req: http::Request<UpstreamBody>,
    ) -> Result<(http::Response<Incoming>, SendRequest<UpstreamBody>), SendError> {
        while let Some(mut sender) = self.take() {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, sender)),
                Err(mut e) => match e.take_message() {
                    Some(r) => req = r,
                    None => return Err(SendError::Http(e.into_error())),
                },
            }
        }
        let stream = match tokio::time::timeout(connect_timeout, connector.connect(self.addr)).await
        {
            Err(_) => return Err(SendError::ConnectTimeout),
            Ok(Err(e)) => return Err(SendError::Connect(e)),
            Ok(Ok(s)) => s,
        };
        let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
            // Requests are small: one flattened write is cheaper than a writev of pieces.
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(SendError::Http)?;
        tokio::spawn(async move {
            // The connection ends when the target closes it or the last sender is dropped.
            let _ = conn.await;
        });
        match sender.send_request(req).await {
            Ok(resp) => Ok((resp, sender)),
            Err(e) => Err(SendError::Http(e)),
        }
    }
}
