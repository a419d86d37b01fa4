//! Per-peer limits: concurrent connections and request rate per IP address.
//!
//! Addresses are held in memory only, while a connection is open or the
//! address's request bucket is not yet full again; they are never logged
//! or stored.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::token_bucket::{Rate, TokenBucket};

/// The unit limits apply to: an IPv4 address, or an IPv6 /64 (one
/// subscriber's prefix; limiting single IPv6 addresses would let one host
/// use 2^64 of them).
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

struct Peer {
    connections: u32,
    requests: TokenBucket,
}

struct Inner {
    max_connections: u32,
    rate: Rate,
    peers: Mutex<HashMap<IpAddr, Peer>>,
}

/// Limits for all peers.
#[derive(Clone)]
pub struct PeerLimits {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PeerLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerLimits")
            .field("max_connections", &self.inner.max_connections)
            .field("rate", &self.inner.rate)
            .finish()
    }
}

/// Held while a connection is open; frees its slot when dropped.
pub struct ConnectionSlot {
    limits: PeerLimits,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut peers = self
            .limits
            .inner
            .peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = peers.get_mut(&peer_key(self.ip)) {
            p.connections = p.connections.saturating_sub(1);
        }
    }
}

impl PeerLimits {
    /// At most `max_connections` open connections and `rate` requests per peer.
    pub fn new(max_connections: u32, rate: Rate) -> Self {
        Self {
            inner: Arc::new(Inner {
                max_connections,
                rate,
                peers: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn peer<'a>(
        &self,
        peers: &'a mut HashMap<IpAddr, Peer>,
        ip: IpAddr,
        now: Instant,
    ) -> &'a mut Peer {
        peers.entry(peer_key(ip)).or_insert_with(|| Peer {
            connections: 0,
            requests: TokenBucket::full(self.inner.rate, now),
        })
    }

    /// Take a connection slot for `ip`, or `None` if it has too many open.
    pub fn connect(&self, ip: IpAddr) -> Option<ConnectionSlot> {
        let mut peers = self
            .inner
            .peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let p = self.peer(&mut peers, ip, Instant::now());
        if p.connections >= self.inner.max_connections {
            return None;
        }
        p.connections += 1;
        Some(ConnectionSlot {
            limits: self.clone(),
            ip,
        })
    }

    /// Count one request from `ip`; refused with the wait if over the rate.
    pub fn request(&self, ip: IpAddr, now: Instant) -> Result<(), Option<Duration>> {
        let mut peers = self
            .inner
            .peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let rate = self.inner.rate;
        self.peer(&mut peers, ip, now)
            .requests
            .try_take(1.0, rate, now)
    }

    /// Forget peers with no connection and a full request bucket.
    pub fn sweep(&self, now: Instant) -> usize {
        let rate = self.inner.rate;
        let mut peers = self
            .inner
            .peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let before = peers.len();
        peers.retain(|_, p| p.connections > 0 || !p.requests.is_full(rate, now));
        before - peers.len()
    }
}

/// A TCP connection that holds its peer's connection slot.
pub struct LimitedConnection {
    io: TcpStream,
    _slot: ConnectionSlot,
}

impl LimitedConnection {
    /// Admit `io` if its peer has a free slot; otherwise the connection is
    /// dropped (closed) and `None` returned.
    ///
    /// Admitted connections have Nagle's algorithm off (`TCP_NODELAY`), as
    /// tonic's own listener sets it: a gRPC response is several small
    /// writes (headers, data, trailers), and with Nagle on the later ones
    /// wait for the client's delayed ACK, about 40 ms on Linux, on every
    /// response too small to fill a segment.
    pub fn admit(io: TcpStream, limits: &PeerLimits) -> Option<Self> {
        let ip = io.peer_addr().ok()?.ip();
        let slot = limits.connect(ip)?;
        // A socket that refuses the option still serves, only slower.
        let _ = io.set_nodelay(true);
        Some(Self { io, _slot: slot })
    }
}

impl Connected for LimitedConnection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl AsyncRead for LimitedConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for LimitedConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn admitted_connections_have_nagle_off() {
        let listener = tokio::net::TcpListener::bind((LOCAL, 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let _client = TcpStream::connect(addr).await.expect("connect");
        let (io, _) = listener.accept().await.expect("accept");
        assert!(!io.nodelay().expect("read TCP_NODELAY"));
        let limits = PeerLimits::new(
            1,
            Rate {
                burst: 1.0,
                per_sec: 1.0,
            },
        );
        let admitted = LimitedConnection::admit(io, &limits).expect("a free slot");
        assert!(admitted.io.nodelay().expect("read TCP_NODELAY"));
    }

    #[test]
    fn connection_slots_are_bounded_and_freed_on_drop() {
        let limits = PeerLimits::new(
            2,
            Rate {
                burst: 1.0,
                per_sec: 1.0,
            },
        );
        let a = limits.connect(LOCAL).expect("first");
        let _b = limits.connect(LOCAL).expect("second");
        assert!(limits.connect(LOCAL).is_none());
        drop(a);
        assert!(limits.connect(LOCAL).is_some());
    }

    #[test]
    fn request_rate_is_bounded_per_peer() {
        let limits = PeerLimits::new(
            2,
            Rate {
                burst: 2.0,
                per_sec: 1.0,
            },
        );
        let t = Instant::now();
        assert!(limits.request(LOCAL, t).is_ok());
        assert!(limits.request(LOCAL, t).is_ok());
        assert_eq!(limits.request(LOCAL, t), Err(Some(Duration::from_secs(1))));
        let other = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
        assert!(limits.request(other, t).is_ok());
    }

    #[test]
    fn one_ipv6_slash_64_is_one_peer() {
        let limits = PeerLimits::new(
            1,
            Rate {
                burst: 1.0,
                per_sec: 1.0,
            },
        );
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        let _slot = limits.connect(a).expect("first");
        assert!(limits.connect(b).is_none(), "same /64");
        assert!(limits.connect(other).is_some(), "another /64");
    }

    #[test]
    fn idle_peers_are_forgotten() {
        let limits = PeerLimits::new(
            2,
            Rate {
                burst: 2.0,
                per_sec: 1.0,
            },
        );
        let t = Instant::now();
        limits.request(LOCAL, t).expect("allowed");
        assert_eq!(limits.sweep(t), 0);
        assert_eq!(limits.sweep(t + Duration::from_secs(2)), 1);
    }
}
