//! `GET /metrics`: the Prometheus text exposition, on its own listener,
//! over TLS when the Admin listener has it.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::tls::HANDSHAKE_TIMEOUT;

/// TLS handshakes `/metrics` runs at once; connections beyond are closed.
const MAX_HANDSHAKES: usize = 64;

/// Serve `GET /metrics` on `listener` until `stopped` resolves, answering
/// with what `render` returns at each scrape; over TLS with `tls`.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    render: impl Fn() -> String + Clone + Send + Sync + 'static,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let render = render.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    render(),
                )
            }
        }),
    );
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
        }
        Some(acceptor) => {
            axum::serve(TlsListener::new(listener, acceptor)?, app)
                .with_graceful_shutdown(stopped)
                .await
        }
    }
}

/// Connections of a TCP listener after their TLS handshake. Handshakes run
/// in their own tasks, each cut off after [`HANDSHAKE_TIMEOUT`], so a slow
/// or silent client cannot hold up the others; failed ones are dropped.
struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    fn new(listener: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(16);
        let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    // The server stopped: stop accepting.
                    () = tx.closed() => return,
                };
                let Ok((tcp, peer)) = accepted else {
                    // Out of descriptors or similar: wait a little, as axum does.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                // At most MAX_HANDSHAKES at once: a crowd of silent
                // clients cannot take every descriptor or task.
                let Ok(permit) = Arc::clone(&handshakes).try_acquire_owned() else {
                    continue;
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
                    if let Ok(Ok(tls)) = handshake.await {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        Ok(Self { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task ended only because this listener is
            // being dropped; nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
