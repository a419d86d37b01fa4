//! A TCP proxy the tests control, put between servers and PostgreSQL or
//! Redis: [`TcpProxy::cut`] drops every open connection and refuses new
//! ones, [`TcpProxy::restore`] lets them through again. It stands in for
//! a service going away and coming back, without touching the shared
//! service itself.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running proxy on `127.0.0.1`.
pub struct TcpProxy {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl TcpProxy {
    /// A proxy to `target` on an ephemeral loopback port, passing traffic.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the proxy binds");
        let addr = listener.local_addr().expect("bound");
        let (cut, _) = watch::channel(false);
        let watch = cut.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *watch.borrow() {
                    drop(client);
                    continue;
                }
                tokio::spawn(pass(client, target, watch.subscribe()));
            }
        });
        Self { addr, cut, task }
    }

    /// The proxy's address, to give the servers instead of the service's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drop every open connection and refuse new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Pass connections again.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copy both ways between `client` and `target` until either side closes
/// or the proxy is cut.
async fn pass(mut client: TcpStream, target: SocketAddr, mut cut: watch::Receiver<bool>) {
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
        _ = cut.wait_for(|cut| *cut) => {}
    }
}

/// The `host:port` of a service URL such as `redis://127.0.0.1:6379/0` or
/// `postgres://user@127.0.0.1:5432/db`, resolved.
pub async fn service_addr(url: &str) -> SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    tokio::net::lookup_host(host_port)
        .await
        .expect("the service's host resolves")
        .next()
        .expect("the service's host has an address")
}
