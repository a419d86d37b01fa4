//! Prometheus metrics: the registry ([`Metrics`]), the tower layer that
//! counts and times every cds RPC ([`layer`]), and the `/metrics` endpoint
//! ([`endpoint`]).
//!
//! Every series is a count, a duration or a size. Labels name RPCs, status
//! codes and limits: never an account, a number, a label or an address.

pub(crate) mod endpoint;
pub(crate) mod layer;

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    rpc: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcCodeLabels {
    rpc: String,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: String,
}

type Latency = Family<RpcLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn feed_lag_histogram() -> Histogram {
    // 0.5 ms to about 64 s, ×1.5 per bucket (fine enough to read a p50/p99).
    Histogram::new(exponential_buckets(0.0005, 1.5, 30))
}

/// The server's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RpcCodeLabels, Counter>,
    latency: Latency,
    refusals: Family<LimitLabels, Counter>,
    /// Blinded elements evaluated.
    pub(crate) evaluated_elements: Counter,
    /// Thread CPU time spent decoding, evaluating and proving.
    pub(crate) evaluation_cpu_seconds: Counter<f64, AtomicU64>,
    /// Discover requests shed by the evaluation gate (overload).
    pub(crate) shed: Counter,
    /// Key rotations completed.
    pub(crate) rotations: Counter,
    /// Tables rebuilt from a snapshot because the change feed had been
    /// pruned past this replica's position.
    pub(crate) feed_rebuilds: Counter,
    /// Admin calls refused for a missing or wrong admin token.
    pub(crate) admin_auth_refusals: Counter,
    feed_lag: Histogram,
    table_records: Gauge,
    table_bytes: Gauge,
    table_build_seconds: Gauge<f64, AtomicU64>,
    ready: Gauge,
    rotating: Gauge,
    quota_accounts: Gauge,
    response_memory: Gauge,
}

/// Values read from the server when the metrics are scraped.
pub(crate) struct Snapshot {
    pub(crate) records: usize,
    pub(crate) record_bytes: usize,
    pub(crate) table_build_ms: u64,
    pub(crate) ready: bool,
    pub(crate) rotating: bool,
    pub(crate) quota_accounts: usize,
    pub(crate) response_memory: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Self {
            registry: Registry::with_prefix("cds"),
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            refusals: Family::default(),
            evaluated_elements: Counter::default(),
            evaluation_cpu_seconds: Counter::default(),
            shed: Counter::default(),
            rotations: Counter::default(),
            feed_rebuilds: Counter::default(),
            admin_auth_refusals: Counter::default(),
            feed_lag: feed_lag_histogram(),
            table_records: Gauge::default(),
            table_bytes: Gauge::default(),
            table_build_seconds: Gauge::default(),
            ready: Gauge::default(),
            rotating: Gauge::default(),
            quota_accounts: Gauge::default(),
            response_memory: Gauge::default(),
        };
        let r = &mut m.registry;
        r.register(
            "requests",
            "gRPC requests answered, by RPC and status code",
            m.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Time from receiving a request to answering it, by RPC",
            m.latency.clone(),
        );
        r.register(
            "limit_refusals",
            "Requests refused by a limit (account-budget, account-concurrency, peer-rate)",
            m.refusals.clone(),
        );
        r.register(
            "evaluated_elements",
            "Blinded elements evaluated",
            m.evaluated_elements.clone(),
        );
        r.register(
            "evaluation_cpu_seconds",
            "Thread CPU time spent decoding, evaluating and proving",
            m.evaluation_cpu_seconds.clone(),
        );
        r.register(
            "shed_requests",
            "Discover requests shed because the server was overloaded",
            m.shed.clone(),
        );
        r.register(
            "key_rotations",
            "Key rotations completed since start",
            m.rotations.clone(),
        );
        r.register(
            "feed_rebuilds",
            "Record tables rebuilt from a snapshot of the shared registry because the change feed had been pruned past this replica's position",
            m.feed_rebuilds.clone(),
        );
        r.register(
            "admin_auth_refusals",
            "Admin calls refused for a missing or wrong admin token",
            m.admin_auth_refusals.clone(),
        );
        r.register(
            "feed_lag_seconds",
            "Time from a change's write in the shared registry (database clock) to its application on this replica",
            m.feed_lag.clone(),
        );
        r.register(
            "table_records",
            "Sealed records in the serving table (discoverable users)",
            m.table_records.clone(),
        );
        r.register(
            "table_bytes",
            "Bytes of sealed records held in memory",
            m.table_bytes.clone(),
        );
        r.register(
            "table_build_seconds",
            "Duration of the last record table build (start or rotation)",
            m.table_build_seconds.clone(),
        );
        r.register(
            "ready",
            "1 once the record table is built and the server is serving",
            m.ready.clone(),
        );
        r.register(
            "rotation_in_progress",
            "1 while a key rotation prepares the next epoch",
            m.rotating.clone(),
        );
        r.register(
            "response_memory_bytes",
            "Memory reserved by Discover responses not yet sent",
            m.response_memory.clone(),
        );
        r.register(
            "quota_accounts",
            "Accounts whose quota state is held (not yet back to a full budget)",
            m.quota_accounts.clone(),
        );
        m
    }
}

impl Metrics {
    /// Count one answered request of `rpc` that started at `started`,
    /// with its status `code` and, if a limit refused it, the limit's name.
    pub(crate) fn observe(
        &self,
        rpc: &str,
        code: tonic::Code,
        limit: Option<&str>,
        started: Instant,
    ) {
        self.requests
            .get_or_create(&RpcCodeLabels {
                rpc: rpc.to_owned(),
                code: code_name(code),
            })
            .inc();
        self.latency
            .get_or_create(&RpcLabels {
                rpc: rpc.to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
        if let Some(limit) = limit {
            self.refusals
                .get_or_create(&LimitLabels {
                    limit: limit.to_owned(),
                })
                .inc();
        }
    }

    /// Note one change of the shared registry's feed applied `lag` seconds
    /// after it was written.
    pub(crate) fn observe_feed_lag(&self, lag: f64) {
        self.feed_lag.observe(lag);
    }

    /// The text exposition of every metric, with the gauges set from `now`.
    pub(crate) fn render(&self, now: Snapshot) -> String {
        let as_i64 = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        self.table_records.set(as_i64(now.records));
        self.table_bytes.set(as_i64(now.record_bytes));
        self.table_build_seconds
            .set(now.table_build_ms as f64 / 1000.0);
        self.ready.set(i64::from(now.ready));
        self.rotating.set(i64::from(now.rotating));
        self.quota_accounts.set(as_i64(now.quota_accounts));
        self.response_memory.set(as_i64(now.response_memory));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The canonical gRPC name of a status code.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle() -> Snapshot {
        Snapshot {
            records: 0,
            record_bytes: 0,
            table_build_ms: 0,
            ready: true,
            rotating: false,
            quota_accounts: 0,
            response_memory: 0,
        }
    }

    #[test]
    fn feed_lag_is_exposed_as_a_histogram_of_seconds() {
        let m = Metrics::default();
        m.observe_feed_lag(0.002);
        m.observe_feed_lag(0.75);
        let text = m.render(idle());
        assert!(text.contains("cds_feed_lag_seconds_count 2"), "{text}");
        assert!(text.contains("cds_feed_lag_seconds_sum 0.752"), "{text}");
        // 2 ms lies in the bucket ending at 0.5 ms × 1.5^4 = 2.53 ms.
        assert!(
            text.contains("cds_feed_lag_seconds_bucket{le=\"0.00253125\"} 1"),
            "{text}"
        );
    }
}
