//! Writing settings as a configuration file: every setting, each preceded
//! by what it does and its default.

use std::time::Duration;

use toml::Value;

use super::docs::{self, SettingDoc};
use super::{ConfigFileError, Settings};

/// What the printed file starts with.
const PREAMBLE: &str = "\
# Configuration of `cds serve`; load it with `cds serve --config FILE`.
# Every setting may be left out (it keeps its default) and can also be given
# as a flag or a CDS_* environment variable (see `cds serve --help`): flags
# win over the environment, which wins over this file. Durations are written
# like \"30s\", \"5min\" or \"30days\".
";

/// Longest comment line.
const WIDTH: usize = 78;

impl Settings {
    /// These settings as a TOML configuration file that
    /// [`Settings::from_toml`] reads back to the same settings: every
    /// setting, each preceded by a comment saying what it does and its
    /// default.
    pub fn to_toml(&self) -> Result<String, ConfigFileError> {
        let s = &self.server;
        let path = |key: &'static str, path: &std::path::Path| {
            path.to_str()
                .map(str::to_owned)
                .ok_or_else(|| ConfigFileError::Unprintable {
                    key,
                    reason: "the path is not valid UTF-8".into(),
                })
        };
        let data_dir = path(docs::DATA_DIR.key, &s.data_dir)?;
        let admin_token_file = match &s.admin_token_file {
            Some(file) => path(docs::ADMIN_TOKEN_FILE.key, file)?,
            None => String::new(),
        };
        let top = [
            (docs::LISTEN, text(s.listen)),
            (docs::ADMIN_LISTEN, text(s.admin_listen)),
            (docs::ADMIN_TOKEN_FILE, text(admin_token_file)),
            (
                docs::METRICS_LISTEN,
                text(s.metrics_listen.map(|a| a.to_string()).unwrap_or_default()),
            ),
            (docs::DATA_DIR, text(data_dir)),
            (
                docs::BUCKET_BITS,
                Value::Integer(s.bucket_bits.get().into()),
            ),
            (
                docs::MAX_ELEMENTS_PER_REQUEST,
                Value::Integer(s.max_elements_per_request.into()),
            ),
            (
                docs::MAX_RESPONSE_BYTES,
                integer(docs::MAX_RESPONSE_BYTES, s.max_response_bytes)?,
            ),
            (docs::REQUEST_TIMEOUT, duration(s.request_timeout)),
            (docs::SHUTDOWN_TIMEOUT, duration(s.shutdown_timeout)),
            (docs::CHANGE_LOG_RETENTION, duration(s.change_log_retention)),
            (
                docs::ISSUER_PUBLIC_KEY,
                text(
                    s.issuer
                        .map(|k| hex::encode(k.to_bytes()))
                        .unwrap_or_default(),
                ),
            ),
            (docs::LOG_FORMAT, text(self.log_format.as_str())),
        ];
        let quota = [
            (docs::QUOTA_BURST, Value::Integer(s.quota.burst.into())),
            (
                docs::QUOTA_REFILL_PER_HOUR,
                Value::Float(s.quota.refill_per_hour),
            ),
            (
                docs::QUOTA_MAX_IN_FLIGHT,
                Value::Integer(s.quota.max_in_flight.into()),
            ),
        ];
        let peer = [
            (
                docs::PEER_MAX_CONNECTIONS,
                Value::Integer(s.peer.max_connections.into()),
            ),
            (
                docs::PEER_REQUESTS_PER_SECOND,
                Value::Float(s.peer.requests_per_second),
            ),
            (
                docs::PEER_REQUEST_BURST,
                Value::Integer(s.peer.request_burst.into()),
            ),
        ];
        let overload = [
            (
                docs::OVERLOAD_MAX_CONCURRENT,
                integer(docs::OVERLOAD_MAX_CONCURRENT, s.overload.max_concurrent)?,
            ),
            (
                docs::OVERLOAD_MAX_QUEUED,
                integer(docs::OVERLOAD_MAX_QUEUED, s.overload.max_queued)?,
            ),
            (
                docs::OVERLOAD_MAX_QUEUE_WAIT,
                duration(s.overload.max_queue_wait),
            ),
        ];

        let mut out = String::from(PREAMBLE);
        for (doc, value) in top {
            setting(&mut out, &doc, &value);
        }
        for (name, entries) in [
            ("quota", &quota[..]),
            ("peer", &peer[..]),
            ("overload", &overload[..]),
        ] {
            out.push('\n');
            if let Some((_, about)) = docs::SECTIONS.iter().find(|(n, _)| *n == name) {
                comment(&mut out, about);
            }
            out.push_str(&format!("[{name}]\n"));
            for (doc, value) in entries {
                setting(&mut out, doc, value);
            }
        }
        Ok(out)
    }
}

fn text(value: impl ToString) -> Value {
    Value::String(value.to_string())
}

fn duration(d: Duration) -> Value {
    text(humantime_serde::re::humantime::format_duration(d))
}

fn integer(doc: SettingDoc, n: usize) -> Result<Value, ConfigFileError> {
    i64::try_from(n)
        .map(Value::Integer)
        .map_err(|_| ConfigFileError::Unprintable {
            key: doc.key,
            reason: format!("{n} is larger than TOML integers allow"),
        })
}

/// A blank line, the comment of `doc`, and `name = value`.
fn setting(out: &mut String, doc: &SettingDoc, value: &Value) {
    out.push('\n');
    comment(out, &format!("{} Default: {}.", doc.about, doc.default));
    out.push_str(&format!("{} = {value}\n", doc.name()));
}

/// `text` as `#` lines of at most [`WIDTH`] characters.
fn comment(out: &mut String, text: &str) {
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() > 1 && line.len() + 1 + word.len() > WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}
