//! Reading a configuration file: TOML whose settings replace the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{InvalidSetting, LogFormat, Settings, docs, parse_issuer_key, parse_optional_addr};

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("cannot read the configuration file {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML, has a key cds does not know, or a value of the
    /// wrong kind.
    #[error(
        "{}{}: {message}; `cds serve --print-config` shows every setting with its default",
        .path.display(),
        .line.map(|l| format!(", line {l}")).unwrap_or_default()
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// The line the problem is on, when known.
        line: Option<usize>,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A value is of the right kind but out of range.
    #[error("{}: {setting}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The setting and what is wrong with it.
        setting: InvalidSetting,
    },
    /// A setting cannot be written as TOML (a data directory whose name is
    /// not UTF-8, a number too large for TOML).
    #[error("cannot print {key} as TOML: {reason}")]
    Unprintable {
        /// The setting.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

impl Settings {
    /// The defaults, with every setting the TOML file at `path` has
    /// replacing its default.
    pub fn from_file(path: &Path) -> Result<Self, ConfigFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// [`Settings::from_file`] on `text` already read from `path` (`path`
    /// only names the file in errors).
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigFileError> {
        let parse_error =
            |span: Option<std::ops::Range<usize>>, message: String| ConfigFileError::Parse {
                path: path.to_owned(),
                line: span.map(|s| line_of(text, s.start)),
                message,
            };
        // Syntax first, so a typo is not reported as a problem with a key.
        if let Err(e) = text.parse::<toml::Table>() {
            return Err(parse_error(
                e.span(),
                format!("not valid TOML: {}", e.message().trim_end()),
            ));
        }
        let file: FileSettings = toml::from_str(text).map_err(|e| {
            let message = e.message().trim_end();
            let key = e.span().and_then(|s| key_at(text, s.start));
            let message = match key {
                Some(key) => match expects(&key) {
                    Some(expects) => format!("{key}: {message} (write {expects})"),
                    None => format!("{key}: {message}"),
                },
                None => message.to_owned(),
            };
            parse_error(e.span(), message)
        })?;
        let mut settings = Settings::default();
        file.apply(&mut settings)
            .map_err(|(span, message)| parse_error(span, message))?;
        settings
            .server
            .validate()
            .map_err(|setting| ConfigFileError::Invalid {
                path: path.to_owned(),
                setting,
            })?;
        Ok(settings)
    }
}

/// The file as written: every setting optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of settings")]
struct FileSettings {
    listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    admin_token_file: Option<PathBuf>,
    metrics_listen: Option<Spanned<String>>,
    data_dir: Option<PathBuf>,
    bucket_bits: Option<u8>,
    max_elements_per_request: Option<u32>,
    max_response_bytes: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    request_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    shutdown_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    change_log_retention: Option<Duration>,
    issuer_public_key: Option<Spanned<String>>,
    log_format: Option<LogFormat>,
    #[serde(default)]
    quota: QuotaSection,
    #[serde(default)]
    peer: PeerSection,
    #[serde(default)]
    overload: OverloadSection,
}

/// `[quota]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [quota] table of settings")]
struct QuotaSection {
    burst: Option<u32>,
    refill_per_hour: Option<f64>,
    max_in_flight: Option<u32>,
}

/// `[peer]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [peer] table of settings")]
struct PeerSection {
    max_connections: Option<u32>,
    requests_per_second: Option<f64>,
    request_burst: Option<u32>,
}

/// `[overload]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [overload] table of settings")]
struct OverloadSection {
    max_concurrent: Option<usize>,
    max_queued: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    max_queue_wait: Option<Duration>,
}

type SpannedError = (Option<std::ops::Range<usize>>, String);

impl FileSettings {
    /// Replace the defaults in `settings` with what the file sets.
    fn apply(self, settings: &mut Settings) -> Result<(), SpannedError> {
        let s = &mut settings.server;
        set(&mut s.listen, self.listen);
        set(&mut s.admin_listen, self.admin_listen);
        if let Some(path) = self.admin_token_file {
            s.admin_token_file = (!path.as_os_str().is_empty()).then_some(path);
        }
        if let Some(addr) = self.metrics_listen {
            s.metrics_listen = parse_optional_addr(addr.get_ref()).map_err(|e| {
                (
                    Some(addr.span()),
                    format!("{}: {e}", docs::METRICS_LISTEN.key),
                )
            })?;
        }
        set(&mut s.data_dir, self.data_dir);
        if let Some(bits) = self.bucket_bits {
            s.bucket_bits = cds_core::BucketBits::new(bits).map_err(|_| {
                let max = cds_core::MAX_BUCKET_BITS;
                (
                    None,
                    format!("bucket_bits must be from 0 to {max}, not {bits}"),
                )
            })?;
        }
        set(
            &mut s.max_elements_per_request,
            self.max_elements_per_request,
        );
        set(&mut s.max_response_bytes, self.max_response_bytes);
        set(&mut s.request_timeout, self.request_timeout);
        set(&mut s.shutdown_timeout, self.shutdown_timeout);
        set(&mut s.change_log_retention, self.change_log_retention);
        if let Some(key) = self.issuer_public_key {
            s.issuer = parse_issuer_key(key.get_ref()).map_err(|e| {
                (
                    Some(key.span()),
                    format!("{}: {e}", docs::ISSUER_PUBLIC_KEY.key),
                )
            })?;
        }
        set(&mut s.quota.burst, self.quota.burst);
        set(&mut s.quota.refill_per_hour, self.quota.refill_per_hour);
        set(&mut s.quota.max_in_flight, self.quota.max_in_flight);
        set(&mut s.peer.max_connections, self.peer.max_connections);
        set(
            &mut s.peer.requests_per_second,
            self.peer.requests_per_second,
        );
        set(&mut s.peer.request_burst, self.peer.request_burst);
        set(&mut s.overload.max_concurrent, self.overload.max_concurrent);
        set(&mut s.overload.max_queued, self.overload.max_queued);
        set(&mut s.overload.max_queue_wait, self.overload.max_queue_wait);
        set(&mut settings.log_format, self.log_format);
        Ok(())
    }
}

fn set<T>(setting: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *setting = v;
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.bytes().take(offset).filter(|&b| b == b'\n').count() + 1
}

/// The key (with its `[section]`) written on the line of byte `offset`:
/// what a value error at `offset` is about.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let line_no = line_of(text, offset);
    let lines: Vec<&str> = text.lines().collect();
    let line = lines.get(line_no - 1)?.trim();
    if let Some(header) = table_header(line) {
        return Some(header.to_owned());
    }
    let key = line.split_once('=')?.0.trim().trim_matches(['"', '\'']);
    if key.is_empty() {
        return None;
    }
    let section = lines[..line_no - 1]
        .iter()
        .rev()
        .find_map(|l| table_header(l.trim()));
    Some(match section {
        Some(section) => format!("{section}.{key}"),
        None => key.to_owned(),
    })
}

/// `quota` for a line `[quota]`.
fn table_header(line: &str) -> Option<&str> {
    let inner = line.strip_prefix('[')?.split(']').next()?.trim();
    (!inner.is_empty() && !inner.starts_with('[')).then_some(inner)
}

/// What a key takes, for errors.
fn expects(key: &str) -> Option<&'static str> {
    const DURATION: &str = "a duration such as \"30s\", \"5min\" or \"30days\"";
    const COUNT: &str = "a whole number";
    const RATE: &str = "a number such as 20.0";
    Some(match key {
        "listen" | "admin_listen" => "an address such as \"127.0.0.1:50051\"",
        "data_dir" => "a directory such as \"./cds-data\"",
        "admin_token_file" => "a file such as \"/etc/cds/admin.token\", or \"\" for none",
        "bucket_bits" => "a whole number from 0 to 24",
        "max_elements_per_request" => "a whole number from 1 to 65535",
        "request_timeout"
        | "shutdown_timeout"
        | "change_log_retention"
        | "overload.max_queue_wait" => DURATION,
        "max_response_bytes"
        | "quota.burst"
        | "quota.max_in_flight"
        | "peer.max_connections"
        | "peer.request_burst"
        | "overload.max_concurrent"
        | "overload.max_queued" => COUNT,
        "quota.refill_per_hour" | "peer.requests_per_second" => RATE,
        "metrics_listen" | "issuer_public_key" => "a string",
        "log_format" => "\"human\" or \"json\"",
        _ => return None,
    })
}
