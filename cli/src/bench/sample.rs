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
    /// Contacts-only mode's costs (`--allow-list N`), measured after the
    /// workload.
    pub allow_list: Option<AllowListFigures>,
    /// Sync mode's steady state (`--resync`).
    pub resync: Option<super::resync::ResyncFigures>,
}

/// What `cds bench --allow-list N` measured: one contacts-only user
/// uploading an allow-list of N numbers, and one of them looking it up.
#[derive(Debug, Clone, Copy)]
pub struct AllowListFigures {
    /// Distinct numbers the owner allowed.
    pub allowed: usize,
    /// Records the server stored for them.
    pub stored: u32,
    /// Label length of the owner's records.
    pub label_len: usize,
    /// Size of the upload request (protobuf).
    pub upload_bytes: usize,
    /// Owner's client: sealing and signing the list (one pairing per
    /// allowed number), wall time.
    pub sealing: Duration,
    /// Upload request to response: the server's checks (two pairings for
    /// the signature), its store write, and the network.
    pub upload_round_trip: Duration,
    /// A finder's client: CPU time deriving the pair key and record keys of
    /// `allowed` contacts (one pairing each), on this thread.
    pub lookup_pairing_cpu: Duration,
    /// The finder's discovery of `lookup_contacts` contacts (the owner and
    /// other allowed numbers), with identity keys.
    pub lookup_contacts: usize,
    /// Pairings the finder's discovery computed.
    pub lookup_pairings: usize,
    /// Request bytes of the finder's discovery (protobuf).
    pub lookup_bytes_sent: usize,
    /// Response bytes of the finder's discovery (protobuf).
    pub lookup_bytes_received: usize,
    /// Wall time of the finder's discovery.
    pub lookup_wall: Duration,
}
