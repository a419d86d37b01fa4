//! The memory all Discover responses may hold at once.
//!
//! A response is built only after its account is admitted, and only with a
//! reservation of its own size ([`ResponseMemory::try_reserve`]); the
//! reservation travels with the response into its HTTP body
//! ([`HoldLayer`]) and is given back when the body has been sent, or
//! dropped because the client went away. Slow readers therefore hold their
//! share until they finish reading, and a crowd of them meets
//! UNAVAILABLE instead of exhausting the process.
//!
//! What a response counts as its own: its evaluated elements and proof,
//! and with `ids` its copy of the requested buckets. The buckets of an
//! `all` response are not its own: every `all` response of one table
//! version sends the same encoding of every bucket
//! (`discovery::shared`), which holds one reservation of its size, owned by
//! the buffer, so it is counted once, for as long as the serving table's
//! cache, a response body or a piece the transport has not written yet
//! refers to it. After a table change the old encoding stays counted until
//! the last response sending it is done.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::codegen::http;

/// Reservations are counted in units of this many bytes.
const UNIT: usize = 1024;

/// The budget of response memory.
#[derive(Clone, Debug)]
pub struct ResponseMemory {
    units: Arc<Semaphore>,
    held: Arc<AtomicUsize>,
    total: usize,
}

/// A reservation of response memory, given back when the last clone drops
/// (it is held, not read).
#[derive(Clone, Debug)]
pub struct Reservation(#[allow(dead_code)] Arc<Held>);

#[derive(Debug)]
struct Held {
    _permit: OwnedSemaphorePermit,
    bytes: usize,
    held: Arc<AtomicUsize>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.held.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl ResponseMemory {
    /// A budget of `total` bytes.
    pub fn new(total: usize) -> Self {
        let units = total.div_ceil(UNIT).clamp(1, Semaphore::MAX_PERMITS);
        Self {
            units: Arc::new(Semaphore::new(units)),
            held: Arc::new(AtomicUsize::new(0)),
            total,
        }
    }

    /// Reserve `bytes` now, or `None` if the budget does not have them (the
    /// caller sheds the request). A single response larger than the whole
    /// budget is refused too.
    pub fn try_reserve(&self, bytes: usize) -> Option<Reservation> {
        let units = u32::try_from(bytes.div_ceil(UNIT).max(1)).ok()?;
        let permit = Arc::clone(&self.units).try_acquire_many_owned(units).ok()?;
        self.held.fetch_add(bytes, Ordering::Relaxed);
        Some(Reservation(Arc::new(Held {
            _permit: permit,
            bytes,
            held: Arc::clone(&self.held),
        })))
    }

    /// The budget, in bytes.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Bytes reserved by responses not yet sent.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

/// Moves a [`Reservation`] from a response's extensions into its body, so
/// that it is held until the body is sent or dropped.
#[derive(Clone, Copy, Debug, Default)]
pub struct HoldLayer;

impl<S> tower::Layer<S> for HoldLayer {
    type Service = Hold<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Hold { inner }
    }
}

/// The service [`HoldLayer`] makes.
#[derive(Clone, Debug)]
pub struct Hold<S> {
    inner: S,
}

impl<S, Req> tower::Service<Req> for Hold<S>
where
    S: tower::Service<Req, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            Ok(match response.extensions_mut().remove::<Reservation>() {
                Some(reservation) => response.map(|body| {
                    tonic::body::Body::new(HeldBody {
                        inner: body,
                        rest: bytes::Bytes::new(),
                        reservation: Some(reservation),
                    })
                }),
                None => response,
            })
        })
    }
}

/// The largest piece of a response handed to the transport at once.
/// The transport asks for the next piece only when the client's flow-control
/// window has room, so what it buffers stays within a window and a piece;
/// the rest of the encoded response stays here, under the reservation.
const PIECE: usize = 64 * 1024;

/// A response body holding its reservation until it ends or is dropped,
/// handing its data out in pieces of at most [`PIECE`] bytes.
struct HeldBody {
    inner: tonic::body::Body,
    /// What is left of the data frame being handed out.
    rest: bytes::Bytes,
    reservation: Option<Reservation>,
}

impl http_body::Body for HeldBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if self.rest.is_empty() {
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => self.rest = data,
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Poll::Ready(None) => {
                    self.reservation = None;
                    return Poll::Ready(None);
                }
                other => return other,
            }
        }
        let n = self.rest.len().min(PIECE);
        let piece = self.rest.split_to(n);
        Poll::Ready(Some(Ok(http_body::Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let mut hint = self.inner.size_hint();
        let rest = self.rest.len() as u64;
        hint.set_lower(hint.lower().saturating_add(rest));
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper.saturating_add(rest));
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_bounded_by_the_budget_and_given_back_on_drop() {
        let budget = ResponseMemory::new(10 * UNIT);
        let a = budget.try_reserve(6 * UNIT).expect("fits");
        assert_eq!(budget.held(), 6 * UNIT);
        assert!(budget.try_reserve(5 * UNIT).is_none(), "over the budget");
        let b = budget.try_reserve(4 * UNIT).expect("fits");
        let a2 = a.clone();
        drop(a);
        assert!(budget.try_reserve(1).is_none(), "a clone still holds it");
        drop(a2);
        drop(b);
        assert_eq!(budget.held(), 0);
        assert!(budget.try_reserve(10 * UNIT).is_some());
        assert!(
            budget.try_reserve(11 * UNIT).is_none(),
            "larger than the budget"
        );
    }
}
