//! The types of setting values: how each is read from text and written
//! as a TOML value.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cds_core::{BucketBits, CredentialVerifier, MAX_BUCKET_BITS};
use toml::Value;

use super::{LogFormat, Settings};

/// A type a setting can have.
pub trait SettingValue: Sized {
    /// The only texts [`SettingValue::parse`] accepts, when they are few.
    const CHOICES: &'static [&'static str] = &[];

    /// Read a value as a flag, an environment variable or the file gives
    /// it; or say what is wrong, as a phrase following the key ("must be
    /// a whole number, not \"x\"").
    fn parse(text: &str) -> Result<Self, String>;

    /// The value as the configuration file writes it, such that
    /// [`SettingValue::parse`] of its text gives it back.
    fn print(&self) -> Result<Value, String>;
}

/// [`SettingValue::CHOICES`] of the field `get` reads (for `field!`).
pub(super) const fn choices<T: SettingValue>(_get: fn(&Settings) -> &T) -> &'static [&'static str] {
    T::CHOICES
}

/// What durations look like, for errors.
const DURATION: &str = "a duration such as \"30s\", \"5min\" or \"30days\"";

/// Parse a duration as files and flags write it: `30s`, `5min`, `30days`,
/// `1h 30min`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("must be {DURATION}, not {text:?} ({e})"))
}

impl SettingValue for Duration {
    fn parse(text: &str) -> Result<Self, String> {
        parse_duration(text)
    }

    fn print(&self) -> Result<Value, String> {
        Ok(Value::String(humantime::format_duration(*self).to_string()))
    }
}

macro_rules! whole_number {
    ($($t:ty),*) => {$(
        impl SettingValue for $t {
            fn parse(text: &str) -> Result<Self, String> {
                text.trim()
                    .parse()
                    .map_err(|_| format!("must be a whole number from 0 to {}, not {text:?}", <$t>::MAX))
            }

            fn print(&self) -> Result<Value, String> {
                i64::try_from(*self)
                    .map(Value::Integer)
                    .map_err(|_| format!("{self} is larger than TOML integers allow"))
            }
        }
    )*};
}
whole_number!(u32, usize);

/// A switch: `true` or `false`; a flag given without a value means `true`.
impl SettingValue for bool {
    const CHOICES: &'static [&'static str] = &["true", "false"];

    fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(format!("must be true or false, not {other:?}")),
        }
    }

    fn print(&self) -> Result<Value, String> {
        Ok(Value::Boolean(*self))
    }
}

impl SettingValue for BucketBits {
    fn parse(text: &str) -> Result<Self, String> {
        let bits: u64 = text.trim().parse().map_err(|_| {
            format!("must be a whole number from 0 to {MAX_BUCKET_BITS}, not {text:?}")
        })?;
        u8::try_from(bits)
            .ok()
            .and_then(|b| BucketBits::new(b).ok())
            .ok_or_else(|| format!("must be from 0 to {MAX_BUCKET_BITS}, not {bits}"))
    }

    fn print(&self) -> Result<Value, String> {
        Ok(Value::Integer(self.get().into()))
    }
}

impl SettingValue for f64 {
    fn parse(text: &str) -> Result<Self, String> {
        text.trim()
            .parse()
            .map_err(|_| format!("must be a number such as 20.0, not {text:?}"))
    }

    fn print(&self) -> Result<Value, String> {
        Ok(Value::Float(*self))
    }
}

impl SettingValue for SocketAddr {
    fn parse(text: &str) -> Result<Self, String> {
        text.trim()
            .parse()
            .map_err(|_| format!("must be an address such as \"127.0.0.1:50051\", not {text:?}"))
    }

    fn print(&self) -> Result<Value, String> {
        Ok(Value::String(self.to_string()))
    }
}

/// An address, or "" for none.
impl SettingValue for Option<SocketAddr> {
    fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|_| {
            format!("must be an address such as \"127.0.0.1:9090\", or \"\" for none, not {text:?}")
        })
    }

    fn print(&self) -> Result<Value, String> {
        Ok(Value::String(
            self.map(|a| a.to_string()).unwrap_or_default(),
        ))
    }
}

impl SettingValue for PathBuf {
    fn parse(text: &str) -> Result<Self, String> {
        Ok(PathBuf::from(text))
    }

    fn print(&self) -> Result<Value, String> {
        self.to_str()
            .map(|s| Value::String(s.to_owned()))
            .ok_or_else(|| "the path is not valid UTF-8".to_owned())
    }
}

/// Text, as given.
impl SettingValue for String {
    fn parse(text: &str) -> Result<Self, String> {
        Ok(text.to_owned())
    }

    fn print(&self) -> Result<Value, String> {
        Ok(Value::String(self.clone()))
    }
}

/// Text, or "" for none.
impl SettingValue for Option<String> {
    fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        Ok((!text.is_empty()).then(|| text.to_owned()))
    }

    fn print(&self) -> Result<Value, String> {
        // Service URLs (registry, budgets) may carry a password: never print it.
        Ok(Value::String(
            self.as_deref().map(redact_url_password).unwrap_or_default(),
        ))
    }
}

/// `scheme://user:password@host...` with the password replaced by
/// `<redacted>`; any other text unchanged.
pub(crate) fn redact_url_password(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:<redacted>@{host}{tail}"),
            None => text.to_owned(),
        },
        None => text.to_owned(),
    }
}

/// A file, or "" for none.
impl SettingValue for Option<PathBuf> {
    fn parse(text: &str) -> Result<Self, String> {
        Ok((!text.is_empty()).then(|| PathBuf::from(text)))
    }

    fn print(&self) -> Result<Value, String> {
        match self {
            Some(path) => path.print(),
            None => Ok(Value::String(String::new())),
        }
    }
}

/// The issuer public key: 64 hex digits, or "" for none (which the server
/// accepts only in development mode, `dev`).
impl SettingValue for Option<cds_core::contacts_only::IssuerPublicKey> {
    fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let bytes = hex::decode(text)
            .map_err(|_| "expected 288 hex digits (from `cds admin contacts-issuer`)")?;
        cds_core::contacts_only::IssuerPublicKey::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("not a contacts issuer public key: {e}"))
    }

    fn print(&self) -> Result<Value, String> {
        Ok(Value::String(
            self.map(|k| hex::encode(k.as_bytes())).unwrap_or_default(),
        ))
    }
}

impl SettingValue for Option<CredentialVerifier> {
    fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let bytes: [u8; 32] = hex::decode(text)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("expected 64 hex digits (the output of `cds admin issuer-keygen`)")?;
        CredentialVerifier::from_bytes(&bytes)
            .map(Some)
            .map_err(|_| {
                "not a valid Ed25519 public key (64 hex digits of a key from `cds admin issuer-keygen`)"
                    .into()
            })
    }

    fn print(&self) -> Result<Value, String> {
        Ok(Value::String(
            self.map(|k| hex::encode(k.to_bytes())).unwrap_or_default(),
        ))
    }
}

impl SettingValue for LogFormat {
    const CHOICES: &'static [&'static str] = &["human", "json"];

    fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "human" => Ok(Self::Human),
            "json" => Ok(Self::Json),
            _ => Err(format!("must be \"human\" or \"json\", not {text:?}")),
        }
    }

    fn print(&self) -> Result<Value, String> {
        Ok(Value::String(self.as_str().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_service_urls_never_show_a_password() {
        for (url, printed) in [
            (
                "postgres://cds:s3cret@db.internal:5432/cds",
                "postgres://cds:<redacted>@db.internal:5432/cds",
            ),
            (
                "redis://:hunter2@cache:6379/0",
                "redis://:<redacted>@cache:6379/0",
            ),
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            (
                "postgres://postgres@127.0.0.1/test",
                "postgres://postgres@127.0.0.1/test",
            ),
        ] {
            let shown = Some(url.to_owned()).print().expect("prints");
            assert_eq!(shown, Value::String(printed.to_owned()));
        }
    }
}
