//! A tower layer that counts and times every cds RPC a listener answers,
//! so no handler has to remember to.
//!
//! The RPC is the method of a `/cds.v1.<Service>/<Method>` path; other
//! services on the listener (health, reflection) are not counted. The code
//! is the `grpc-status` of the response head: handlers that fail answer
//! with the status in the head (a trailers-only response), and a head
//! without one is a success whose status `OK` follows in the trailers. The
//! latency runs to the response head, which for cds's unary responses is
//! the handler's whole work. A method the service does not have is counted
//! as `unknown`, so requests for made-up paths cannot grow the label set.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use cds_proto::wire::{self, Limit};
use tonic::codegen::http;
use tower::{Layer, Service};

use super::Metrics;

/// The package prefix of the paths counted.
const CDS_PATH_PREFIX: &str = "/cds.v1.";

/// Adds [`Observed`] around a listener's routes.
#[derive(Clone, Debug)]
pub(crate) struct ObserveLayer {
    metrics: Arc<Metrics>,
}

impl ObserveLayer {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observed {
            inner,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

/// The service [`ObserveLayer`] makes.
#[derive(Clone, Debug)]
pub(crate) struct Observed<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

/// The method of a cds RPC path, if `path` is one.
fn cds_method(path: &str) -> Option<&str> {
    let (_service, method) = path.strip_prefix(CDS_PATH_PREFIX)?.split_once('/')?;
    (!method.is_empty() && !method.contains('/')).then_some(method)
}

/// The status code and refusing limit a response head carries.
fn outcome(headers: &http::HeaderMap) -> (tonic::Code, Option<Limit>) {
    let code = headers
        .get("grpc-status")
        .map_or(tonic::Code::Ok, |v| tonic::Code::from_bytes(v.as_bytes()));
    let limit = headers
        .get(wire::LIMIT)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (code, limit)
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Observed<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let method = cds_method(request.uri().path()).map(str::to_owned);
        let started = Instant::now();
        let response = self.inner.call(request);
        let metrics = Arc::clone(&self.metrics);
        Box::pin(async move {
            let result = response.await;
            if let (Some(method), Ok(response)) = (method, &result) {
                let (code, limit) = outcome(response.headers());
                let rpc = if code == tonic::Code::Unimplemented {
                    "unknown"
                } else {
                    &method
                };
                metrics.observe(rpc, code, limit.map(Limit::as_str), started);
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cds_methods_are_named() {
        assert_eq!(cds_method("/cds.v1.Discovery/Discover"), Some("Discover"));
        assert_eq!(cds_method("/cds.v1.Admin/Import"), Some("Import"));
        assert_eq!(cds_method("/grpc.health.v1.Health/Check"), None);
        assert_eq!(cds_method("/cds.v1.Discovery/"), None);
        assert_eq!(cds_method("/cds.v1.Discovery/a/b"), None);
        assert_eq!(cds_method("/cds.v1.Discovery"), None);
    }

    #[test]
    fn a_head_without_status_is_ok_and_a_refusal_names_its_limit() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(outcome(&headers), (tonic::Code::Ok, None));
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
        headers.insert(wire::LIMIT, http::HeaderValue::from_static("peer-rate"));
        assert_eq!(
            outcome(&headers),
            (tonic::Code::ResourceExhausted, Some(Limit::PeerRate))
        );
        headers.insert(wire::LIMIT, http::HeaderValue::from_static("made-up"));
        assert_eq!(outcome(&headers).1, None);
    }
}
