//! What discovery returns, as plain values the bindings can carry.

use cds_client::InvalidReason as RustReason;

/// What discovery found for one address-book entry (the Rust client's
/// [`cds_client::Contact`]).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum Contact {
    /// A registered user who opted into discovery, or a contacts-only user
    /// who listed this user's number (`label` is then the one that user
    /// uploaded; [`crate::DiscoveryReport::found_by_allow_list`] counts them).
    Registered {
        /// The entry in E.164 form, such as `"+12015550123"`.
        number: String,
        /// The label the messenger's backend attached to the user (opaque
        /// bytes, at most 64).
        label: Vec<u8>,
    },
    /// A valid number that no discoverable user has.
    NotRegistered {
        /// The entry in E.164 form.
        number: String,
    },
    /// The entry is not a phone number.
    Invalid {
        /// Why not.
        reason: InvalidReason,
    },
}

impl From<cds_client::Contact> for Contact {
    fn from(c: cds_client::Contact) -> Self {
        match c {
            cds_client::Contact::Registered { number, label } => Contact::Registered {
                number: number.as_str().to_owned(),
                label: label.as_bytes().to_vec(),
            },
            cds_client::Contact::NotRegistered { number } => Contact::NotRegistered {
                number: number.as_str().to_owned(),
            },
            cds_client::Contact::Invalid { reason } => Contact::Invalid {
                reason: reason.into(),
            },
            // A status this version of the bindings does not know yet reads
            // as not a phone number: nothing is claimed about the entry.
            _ => Contact::Invalid {
                reason: InvalidReason::NotANumber,
            },
        }
    }
}

/// Why an address-book entry is not a phone number (the Rust client's
/// [`cds_client::InvalidReason`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum InvalidReason {
    /// The entry is empty or only whitespace.
    Empty,
    /// Nothing in the entry reads as a phone number.
    NotANumber,
    /// The country calling code does not exist.
    InvalidCountryCode,
    /// Fewer digits than any number of its country.
    TooShort,
    /// More digits than any number of its country, or too long an entry.
    TooLong,
    /// Not a valid number in its country's numbering plan.
    NotValid,
}

impl From<RustReason> for InvalidReason {
    fn from(r: RustReason) -> Self {
        match r {
            RustReason::Empty => InvalidReason::Empty,
            RustReason::InvalidCountryCode => InvalidReason::InvalidCountryCode,
            RustReason::TooShort => InvalidReason::TooShort,
            RustReason::TooLong => InvalidReason::TooLong,
            RustReason::NotValid => InvalidReason::NotValid,
            _ => InvalidReason::NotANumber,
        }
    }
}

/// What the last [`crate::DiscoveryClient::discover`] call did (the Rust
/// client's [`cds_client::DiscoveryReport`]): counts only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, uniffi::Record)]
pub struct DiscoveryReport {
    /// Distinct valid numbers looked up.
    pub contacts: u64,
    /// Of those, how many the server evaluated (each costs quota).
    pub evaluated: u64,
    /// Of those, how many came from the cache (free).
    pub cached: u64,
    /// Discover requests sent.
    pub requests: u64,
    /// Bytes of the requests sent (protobuf).
    pub bytes_sent: u64,
    /// Bytes of the responses received (protobuf).
    pub bytes_received: u64,
    /// Records under a contact's tag that did not open: a corrupt or forged
    /// table. Show it to the user at most; never send it anywhere.
    pub unopenable_records: u64,
    /// Pairings computed to look contacts up among contacts-only users'
    /// allow-lists (0 without identity keys).
    pub pairings: u64,
    /// Of the contacts found, how many through a contacts-only user's
    /// allow-list.
    pub found_by_allow_list: u64,
    /// Sync mode: `SyncRecords` calls made to bring the copy of the records
    /// up to date (pages of a download, or one delta); 0 in other modes.
    pub sync_requests: u64,
    /// Sync mode: bytes of the `SyncRecords` requests sent (protobuf; not
    /// in `bytes_sent`).
    pub sync_bytes_sent: u64,
    /// Sync mode: bytes of the `SyncRecords` responses received (protobuf;
    /// not in `bytes_received`): the whole table on a download, a few dozen
    /// bytes for a delta with nothing changed.
    pub sync_bytes_received: u64,
    /// Sync mode: whether this call downloaded the copy whole (the first
    /// call of a key epoch, or when the server no longer had the changes
    /// since the copy's version) rather than by delta.
    pub full_download: bool,
}

impl From<cds_client::DiscoveryReport> for DiscoveryReport {
    fn from(r: cds_client::DiscoveryReport) -> Self {
        let n = |v: usize| v as u64;
        DiscoveryReport {
            contacts: n(r.contacts),
            evaluated: n(r.evaluated),
            cached: n(r.cached),
            requests: n(r.requests),
            bytes_sent: n(r.bytes_sent),
            bytes_received: n(r.bytes_received),
            unopenable_records: n(r.unopenable_records),
            pairings: n(r.pairings),
            found_by_allow_list: n(r.found_by_allow_list),
            sync_requests: n(r.sync_requests),
            sync_bytes_sent: n(r.sync_bytes_sent),
            sync_bytes_received: n(r.sync_bytes_received),
            full_download: r.full_download,
        }
    }
}
