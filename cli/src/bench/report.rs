//! What `cds bench` reports: a table for people, JSON for machines.

use std::time::Duration;

use super::BenchArgs;
use super::sample::{AllowListFigures, Measured, Sample, Setup};

/// The benchmark's findings.
#[derive(Debug)]
pub struct Report {
    mode: &'static str,
    contacts_per_request: usize,
    clients: usize,
    bucket_bits: u8,
    contacts_only: bool,
    measured: Measured,
    setup: Option<Setup>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The curve25519-dalek backend of this process (the client's; with
/// `--local` the server's too), and whether AVX-512 IFMA was compiled.
fn curve_backend() -> String {
    let backend = cds_core::CurveBackend::detect();
    let note = match (backend, cds_core::CurveBackend::avx512_compiled()) {
        (cds_core::CurveBackend::Avx512Ifma, _) => "",
        (_, true) => "; AVX-512 IFMA compiled in, this CPU lacks it",
        (_, false) => "; built without AVX-512 IFMA",
    };
    format!("{backend} (this process{note})")
}

fn human_bytes(b: f64) -> String {
    match b {
        b if b >= 1e9 => format!("{:.2} GB", b / 1e9),
        b if b >= 1e6 => format!("{:.2} MB", b / 1e6),
        b if b >= 1e3 => format!("{:.1} kB", b / 1e3),
        b => format!("{b:.0} B"),
    }
}

impl Report {
    /// Gather the findings of a run.
    pub fn new(
        args: &BenchArgs,
        mode: &'static str,
        measured: Measured,
        setup: Option<Setup>,
    ) -> Self {
        Self {
            mode,
            contacts_per_request: args.contacts,
            clients: args.clients,
            bucket_bits: measured.bucket_bits,
            contacts_only: args.contacts_only,
            measured,
            setup,
        }
    }

    fn requests(&self) -> usize {
        self.measured.samples.len()
    }

    fn contacts(&self) -> usize {
        self.measured.samples.iter().map(|s| s.contacts).sum()
    }

    fn per_request(&self, f: impl Fn(&Sample) -> usize) -> f64 {
        let n = self.requests().max(1) as f64;
        self.measured.samples.iter().map(f).sum::<usize>() as f64 / n
    }

    fn latencies(&self) -> Vec<Duration> {
        let mut l: Vec<Duration> = self.measured.samples.iter().map(|s| s.latency).collect();
        l.sort();
        l
    }

    /// Connection set-up times, sorted.
    fn connects(&self) -> Vec<Duration> {
        let mut c = self.measured.connects.clone();
        c.sort();
        c
    }

    fn client_cpu_us_per_contact(&self) -> f64 {
        let cpu: Duration = self.measured.samples.iter().map(|s| s.client_cpu).sum();
        cpu.as_secs_f64() * 1e6 / self.contacts().max(1) as f64
    }

    fn server_cpu_us_per_element(&self) -> Option<f64> {
        self.measured
            .server
            .map(|s| s.busy.as_secs_f64() * 1e6 / s.evaluated.max(1) as f64)
    }

    /// The findings as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let secs = self.measured.elapsed.as_secs_f64();
        let l = self.latencies();
        serde_json::json!({
            "mode": self.mode,
            "curve_backend": cds_core::CurveBackend::detect().as_str(),
            "curve_backend_avx512_compiled": cds_core::CurveBackend::avx512_compiled(),
            "users": self.setup.map(|s| s.users),
            "contacts_per_request": self.contacts_per_request,
            "clients": self.clients,
            "bucket_bits": self.bucket_bits,
            "bucket_mode": if self.contacts_only { "contacts" } else { "all" },
            "requests": self.requests(),
            "refused": self.measured.refused,
            "contacts": self.contacts(),
            "matched": self.measured.samples.iter().map(|s| s.matched).sum::<usize>(),
            "duration_s": secs,
            "requests_per_s": self.requests() as f64 / secs,
            "contacts_per_s": self.contacts() as f64 / secs,
            "latency_ms": {
                "p50": ms(percentile(&l, 0.50)),
                "p95": ms(percentile(&l, 0.95)),
                "p99": ms(percentile(&l, 0.99)),
                "max": ms(l.last().copied().unwrap_or_default()),
            },
            "tls": self.measured.tls,
            "connect_ms": {
                "p50": ms(percentile(&self.connects(), 0.50)),
                "max": ms(self.connects().last().copied().unwrap_or_default()),
            },
            "bytes_up_per_request": self.per_request(|s| s.bytes_up),
            "bytes_down_per_request": self.per_request(|s| s.bytes_down),
            "server_cpu_us_per_element": self.server_cpu_us_per_element(),
            "client_cpu_us_per_contact": self.client_cpu_us_per_contact(),
            "table_build_s": self.setup.map(|s| s.table_build.as_secs_f64()),
            "table_records": self.setup.map(|s| s.table_records),
            "table_bytes": self.setup.map(|s| s.table_bytes),
            "table_bytes_per_user": self.setup.map(|s| s.table_bytes as f64 / s.users.max(1) as f64),
            "rss_bytes_per_user": self.setup.and_then(|s| s.rss_delta.map(|r| r as f64 / s.users.max(1) as f64)),
            "allow_list": self.measured.allow_list.map(|a| allow_list_json(&a)),
            "resync": self.measured.resync.as_ref().map(super::resync::ResyncFigures::to_json),
        })
    }

    /// The findings as a table for people.
    pub fn to_table(&self) -> String {
        let secs = self.measured.elapsed.as_secs_f64();
        let l = self.latencies();
        let mut rows: Vec<(String, String)> = Vec::new();
        if let Some(s) = &self.setup {
            rows.push((
                "table build".into(),
                format!(
                    "{:.2} s for {} users ({:.1} bytes of records per user{})",
                    s.table_build.as_secs_f64(),
                    s.users,
                    s.table_bytes as f64 / s.users.max(1) as f64,
                    s.rss_delta
                        .map(|r| format!(
                            ", resident memory +{:.1} bytes per user",
                            r as f64 / s.users.max(1) as f64
                        ))
                        .unwrap_or_default()
                ),
            ));
        }
        rows.push((
            "requests".into(),
            format!(
                "{} in {:.1} s: {:.2}/s",
                self.requests(),
                secs,
                self.requests() as f64 / secs
            ),
        ));
        rows.push((
            "contacts".into(),
            format!(
                "{} ({:.0}/s), {} matched",
                self.contacts(),
                self.contacts() as f64 / secs,
                self.measured
                    .samples
                    .iter()
                    .map(|s| s.matched)
                    .sum::<usize>()
            ),
        ));
        rows.push((
            "latency".into(),
            format!(
                "p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                ms(percentile(&l, 0.5)),
                ms(percentile(&l, 0.95)),
                ms(percentile(&l, 0.99)),
                ms(l.last().copied().unwrap_or_default())
            ),
        ));
        let c = self.connects();
        rows.push((
            "connection set-up".into(),
            format!(
                "p50 {:.1} ms, max {:.1} ms per client (TCP{}, HTTP/2; not in latency)",
                ms(percentile(&c, 0.5)),
                ms(c.last().copied().unwrap_or_default()),
                if self.measured.tls {
                    ", TLS 1.3 handshake"
                } else {
                    ""
                }
            ),
        ));
        rows.push((
            "bytes per request".into(),
            format!(
                "{} up, {} down",
                human_bytes(self.per_request(|s| s.bytes_up)),
                human_bytes(self.per_request(|s| s.bytes_down))
            ),
        ));
        rows.push((
            "server CPU".into(),
            match self.server_cpu_us_per_element() {
                Some(us) => format!("{us:.1} µs per evaluated element (decode, evaluate, prove)"),
                None => "unknown (give --admin URL to read the server's counters)".into(),
            },
        ));
        rows.push((
            "client CPU".into(),
            format!(
                "{:.1} µs per contact (blind, verify, unblind, match)",
                self.client_cpu_us_per_contact()
            ),
        ));
        if let Some(r) = &self.measured.resync {
            rows.extend(r.rows(human_bytes));
        }
        rows.push(("curve backend".into(), curve_backend()));
        if let Some(a) = &self.measured.allow_list {
            rows.extend(allow_list_rows(a));
        }
        let mut out = format!(
            "cds bench: {} server, {} clients x {} contacts per request, {} buckets ({})\n",
            self.mode,
            self.clients,
            self.contacts_per_request,
            1u64 << self.bucket_bits,
            if self.contacts_only {
                "contacts' buckets only"
            } else {
                "all buckets"
            }
        );
        for (k, v) in rows {
            out.push_str(&format!("  {k:<18} {v}\n"));
        }
        out
    }
}

/// Microseconds of `d` per one of `n`.
fn us_per(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n.max(1) as f64
}

/// Bytes one stored pair record takes: the record (its tag, nonce, label
/// and AEAD tag), the same on disk and in the served table.
fn record_bytes(a: &AllowListFigures) -> usize {
    cds_core::RECORD_OVERHEAD + a.label_len
}

/// `--allow-list`: the JSON object (BENCHMARKING.md lists its fields).
fn allow_list_json(a: &AllowListFigures) -> serde_json::Value {
    serde_json::json!({
        "allowed": a.allowed,
        "stored": a.stored,
        "label_len": a.label_len,
        "upload_bytes": a.upload_bytes,
        "upload_bytes_per_allowed": a.upload_bytes as f64 / a.allowed.max(1) as f64,
        "sealing_ms": ms(a.sealing),
        "sealing_us_per_allowed": us_per(a.sealing, a.allowed),
        "upload_round_trip_ms": ms(a.upload_round_trip),
        "server_bytes_per_pair": record_bytes(a),
        "lookup_pairing_cpu_us_per_contact": us_per(a.lookup_pairing_cpu, a.lookup_contacts),
        "lookup_contacts": a.lookup_contacts,
        "lookup_pairings": a.lookup_pairings,
        "lookup_bytes_sent": a.lookup_bytes_sent,
        "lookup_bytes_received": a.lookup_bytes_received,
        "lookup_ms": ms(a.lookup_wall),
    })
}

/// `--allow-list`: the rows of the table.
fn allow_list_rows(a: &AllowListFigures) -> Vec<(String, String)> {
    vec![
        (
            "allow-list upload".into(),
            format!(
                "{} numbers, {} records stored, {} sent ({:.1} B per number)",
                a.allowed,
                a.stored,
                human_bytes(a.upload_bytes as f64),
                a.upload_bytes as f64 / a.allowed.max(1) as f64
            ),
        ),
        (
            "  sealing".into(),
            format!(
                "{:.1} ms, {:.0} µs per number (1 pairing each; wall time)",
                ms(a.sealing),
                us_per(a.sealing, a.allowed)
            ),
        ),
        (
            "  server check".into(),
            format!(
                "{:.1} ms round trip (decode, 2 pairings for the signature, store write)",
                ms(a.upload_round_trip)
            ),
        ),
        (
            "  server storage".into(),
            format!(
                "{} B per allowed pair (one record, {} B label)",
                record_bytes(a),
                a.label_len
            ),
        ),
        (
            "allow-list lookup".into(),
            format!(
                "{} contacts, {} pairings, {} up, {} down, {:.1} ms; found",
                a.lookup_contacts,
                a.lookup_pairings,
                human_bytes(a.lookup_bytes_sent as f64),
                human_bytes(a.lookup_bytes_received as f64),
                ms(a.lookup_wall)
            ),
        ),
        (
            "  pairing CPU".into(),
            format!(
                "{:.0} µs per contact (pair key and record keys, this thread)",
                us_per(a.lookup_pairing_cpu, a.lookup_contacts)
            ),
        ),
    ]
}
