//! Running work off the async workers: CPU-bound work on the rayon pool,
//! blocking registry I/O on tokio's blocking pool.

use std::panic::AssertUnwindSafe;

use tonic::Status;

/// Run CPU-bound `f` on the rayon pool (all cores) without blocking an
/// async worker. A panic inside `f` becomes INTERNAL instead of aborting.
pub(crate) async fn on_cpu_pool<T, F>(f: F) -> Result<T, Status>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(AssertUnwindSafe(f)));
    });
    match rx.await {
        Ok(Ok(v)) => Ok(v),
        _ => {
            tracing::error!("a CPU task panicked");
            Err(Status::internal(
                "internal error while evaluating; the request changed nothing",
            ))
        }
    }
}

/// Run blocking I/O `f` (the registry) on tokio's blocking pool.
pub(crate) async fn on_blocking_pool<T, F>(f: F) -> Result<T, Status>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|_| {
        tracing::error!("a blocking task panicked");
        Status::internal("internal error in the registry")
    })
}
