//! The evaluation gate: at most `concurrent` evaluations run at once and at
//! most `queue` wait, each for at most `max_wait`. Anything beyond is shed
//! at once with UNAVAILABLE, so overload costs the server almost nothing
//! and every request gets an answer quickly.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The gate.
#[derive(Debug)]
pub struct Gate {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue: usize,
    max_wait: Duration,
}

/// Why the gate refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// The queue is full.
    QueueFull,
    /// Waited `max_wait` without getting in.
    Timeout,
}

struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Gate {
    /// A gate for `concurrent` running and `queue` waiting evaluations.
    pub fn new(concurrent: usize, queue: usize, max_wait: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrent.clamp(1, Semaphore::MAX_PERMITS))),
            waiting: AtomicUsize::new(0),
            queue,
            max_wait,
        }
    }

    /// Get in, wait in the bounded queue, or be shed.
    pub async fn enter(&self) -> Result<OwnedSemaphorePermit, Shed> {
        if let Ok(p) = Arc::clone(&self.permits).try_acquire_owned() {
            return Ok(p);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Shed::QueueFull);
        }
        let _waiting = Waiting(&self.waiting);
        match tokio::time::timeout(self.max_wait, Arc::clone(&self.permits).acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(Shed::Timeout),
        }
    }

    /// The wait a shed client should observe before retrying.
    pub fn retry_after(&self) -> Duration {
        self.max_wait.max(Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn beyond_running_and_queued_requests_are_shed_immediately() {
        let gate = Arc::new(Gate::new(1, 1, Duration::from_secs(5)));
        let running = gate.enter().await.expect("runs");
        let g = Arc::clone(&gate);
        let queued = tokio::spawn(async move { g.enter().await.map(drop) });
        tokio::task::yield_now().await;
        while gate.waiting.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(gate.enter().await.err(), Some(Shed::QueueFull));
        drop(running);
        assert!(queued.await.expect("joins").is_ok());
    }

    #[tokio::test]
    async fn a_queued_request_gives_up_after_max_wait() {
        let gate = Gate::new(1, 4, Duration::from_millis(20));
        let _running = gate.enter().await.expect("runs");
        assert_eq!(gate.enter().await.err(), Some(Shed::Timeout));
        assert_eq!(gate.waiting.load(Ordering::SeqCst), 0);
    }
}
