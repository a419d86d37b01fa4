//! What a `cds bench` run measured: the data the workload and the local
//! server setup collect, and the report turns into a table or JSON.
//!
//! Plain data with no behaviour, so that both sides depend on it and not on
//! each other: `workload` and `local` fill it in, `report` reads it.

use std::time::Duration;

/// One request as the client saw it.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Send to response.
    pub latency: Duration,
    /// Client work: blinding, then verifying, unblinding and matching.
    pub client_cpu: Duration,
    /// Encoded request size.
    pub bytes_up: usize,
    /// Encoded response size.
    pub bytes_down: usize,
    /// Contacts in the request.
    pub contacts: usize,
    /// Contacts found registered.
    pub matched: usize,
}

/// The server's evaluation counters over the run.
#[derive(Debug, Clone, Copy)]
pub struct ServerSide {
    /// Elements evaluated.
    pub evaluated: u64,
    /// Thread-busy time decoding, evaluating and proving them.
    pub busy: Duration,
}

/// The local server's setup.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// Registered synthetic users.
    pub users: usize,
    /// Time to build the record table.
    pub table_build: Duration,
    /// Records in the table.
    pub table_records: u64,
    /// Bytes of records in the table.
    pub table_bytes: u64,
    /// Growth of the process's resident memory over the table build.
    pub rss_delta: Option<u64>,
}

/// What a workload run measured.
#[derive(Debug)]
pub struct Measured {
    /// One sample per served request.
    pub samples: Vec<Sample>,
    /// Requests refused by a limit or shed.
    pub refused: usize,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// The server's CPU counters over the run, if reachable.
    pub server: Option<ServerSide>,
    /// The server's bucket bits.
    pub bucket_bits: u8,
    /// Each client's connection set-up (TCP, TLS handshake if any, HTTP/2),
    /// not counted in request latency.
    pub connects: Vec<Duration>,
    /// Whether the workload ran over TLS.
    pub tls: bool,
    /// Sync mode's steady state (`--resync`).
    pub resync: Option<super::resync::ResyncFigures>,
}
