//! `GET /metrics`: the Prometheus text exposition, on its own listener.

use tokio::net::TcpListener;

/// Serve `GET /metrics` on `listener` until `stopped` resolves, answering
/// with what `render` returns at each scrape.
pub(crate) async fn serve(
    listener: TcpListener,
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
    axum::serve(listener, app)
        .with_graceful_shutdown(stopped)
        .await
}
