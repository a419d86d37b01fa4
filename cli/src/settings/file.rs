//! Reading a configuration file: TOML whose settings replace the defaults.

use std::ops::Range;
use std::path::{Path, PathBuf};

use cds_server::config::InvalidSetting;
use toml::de::{DeTable, DeValue};

use super::{SECTIONS, SETTINGS, Setting, Settings, setting};

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
    /// The file is not TOML, has a key cds does not know, or a value it
    /// cannot read.
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
    /// The settings together are not ones the server can run with.
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

/// What is wrong at a place in the file.
type Located = (Range<usize>, String);

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
        let parse_error = |span: Option<Range<usize>>, message: String| ConfigFileError::Parse {
            path: path.to_owned(),
            line: span.map(|s| line_of(text, s.start)),
            message,
        };
        let document = DeTable::parse(text).map_err(|e| {
            parse_error(
                e.span(),
                format!("not valid TOML: {}", e.message().trim_end()),
            )
        })?;
        let defaults = Settings::default();
        let mut settings = defaults.clone();
        read_table(document.get_ref(), None, &defaults, &mut settings)
            .map_err(|(span, message)| parse_error(Some(span), message))?;
        // The environment or flags may still give the issuer key (or
        // `dev`); `cds serve` checks the whole once they are applied.
        settings
            .server
            .validate_partial()
            .map_err(|setting| ConfigFileError::Invalid {
                path: path.to_owned(),
                setting,
            })?;
        Ok(settings)
    }
}

/// Read the settings of `table`, the whole file or the `[section]`, in the
/// order the file has them.
fn read_table(
    table: &DeTable<'_>,
    section: Option<&str>,
    defaults: &Settings,
    settings: &mut Settings,
) -> Result<(), Located> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(name, _)| name.span().start);
    for (name, value) in entries {
        let key = match section {
            Some(section) => format!("{section}.{}", name.get_ref()),
            None => name.get_ref().to_string(),
        };
        if let Some(setting) = setting(&key) {
            read_value(setting, value.get_ref(), defaults, settings)
                .map_err(|problem| (value.span(), format!("{key}: {problem}")))?;
            continue;
        }
        let is_section = section.is_none() && SECTIONS.iter().any(|s| s.name == key);
        match value.get_ref() {
            DeValue::Table(table) if is_section => {
                read_table(table, Some(&key), defaults, settings)?;
            }
            _ if is_section => {
                let message = format!("{key}: expected a [{key}] table of settings");
                return Err((value.span(), message));
            }
            _ => {
                let message = format!(
                    "{key}: unknown field `{}`, expected one of {}",
                    name.get_ref(),
                    known(section)
                );
                return Err((name.span(), message));
            }
        }
    }
    Ok(())
}

/// The keys a table may have, for errors: "`burst`, `refill_per_hour`".
fn known(section: Option<&str>) -> String {
    let sections = SECTIONS.iter().filter(|_| section.is_none());
    SETTINGS
        .iter()
        .filter(|s| s.section() == section)
        .map(Setting::name)
        .chain(sections.map(|s| s.name))
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Read the file's `value` of `setting` into `settings`. It must be of the
/// TOML type `--print-config` writes (a whole number will do for a number
/// with a fraction).
fn read_value(
    setting: &Setting,
    value: &DeValue<'_>,
    defaults: &Settings,
    settings: &mut Settings,
) -> Result<(), String> {
    let text = match value {
        DeValue::String(s) => Some(s.to_string()),
        DeValue::Integer(n) => Some(
            i128::from_str_radix(n.as_str(), n.radix())
                .map_or_else(|_| n.to_string(), |n| n.to_string()),
        ),
        DeValue::Float(f) => Some(f.as_str().to_owned()),
        DeValue::Boolean(b) => Some(b.to_string()),
        _ => None,
    };
    let expected = setting.get(defaults)?;
    let fits = matches!(
        (&expected, value),
        (toml::Value::String(_), DeValue::String(_))
            | (toml::Value::Integer(_), DeValue::Integer(_))
            | (toml::Value::Boolean(_), DeValue::Boolean(_))
            | (
                toml::Value::Float(_),
                DeValue::Float(_) | DeValue::Integer(_)
            )
    );
    // A value that does not parse says best what is expected; one that
    // does but is of another type ("8" for 8) is refused all the same.
    if let Some(text) = text {
        setting.set(settings, &text)?;
    }
    if fits {
        Ok(())
    } else {
        Err(format!(
            "must be written as {}, not as {}",
            kind(expected.type_str()),
            kind(value.type_str())
        ))
    }
}

/// A TOML type, as a person reads it.
fn kind(type_str: &str) -> String {
    match type_str {
        "string" => "a string (in quotes)".into(),
        "integer" => "a whole number".into(),
        "float" => "a number".into(),
        "boolean" => "true or false".into(),
        other => format!("a {other}"),
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.bytes().take(offset).filter(|&b| b == b'\n').count() + 1
}
