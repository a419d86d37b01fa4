//! The settings of `cds serve`, each described once in [`SETTINGS`].
//!
//! [`Settings`] is what the server runs with plus how `cds serve` logs.
//! Every setting is one row of the table: its key in the configuration
//! file, what it does, its default and how its value is read from text and
//! written back. From the table come the flags and `CDS_*` environment
//! variables ([`SettingArgs`]), reading a file ([`Settings::from_file`]),
//! `--print-config` ([`Settings::to_toml`]) and the help texts.

use cds_server::ServerConfig;

mod args;
mod file;
mod render;
mod table;
mod value;

pub use args::SettingArgs;
pub use file::ConfigFileError;
pub use table::{SECTIONS, SETTINGS, Section};
pub use value::{SettingValue, parse_duration};

/// Everything a configuration file holds: the server's settings and how
/// `cds serve` logs. [`Settings::default`] is the defaults.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Settings {
    /// The server's settings.
    pub server: ServerConfig,
    /// The log format.
    pub log_format: LogFormat,
}

/// How `cds serve` writes its logs (to standard error).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One line of text per event.
    #[default]
    Human,
    /// One JSON object per event.
    Json,
}

impl LogFormat {
    /// The name used in files, flags and environment variables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Human => "human",
            Self::Json => "json",
        }
    }
}

/// One setting: one row of [`SETTINGS`].
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    /// The key in the configuration file, with its section: `bucket_bits`,
    /// `quota.burst`.
    pub key: &'static str,
    /// What the value looks like, in `--help`: `ADDR`, `N`.
    pub value_name: &'static str,
    /// The default, as a person reads it.
    pub default: &'static str,
    /// What the setting does, as one or more sentences.
    pub about: &'static str,
    /// The flag, when it is not the key with `-` for `.` and `_`; the
    /// derived name then stays an alias.
    pub flag: Option<&'static str>,
    /// How the value is read and written.
    pub field: Field,
}

/// How a setting's value is read from text into [`Settings`] and written
/// back; made by `field!(path.to.field)` from the field's
/// [`SettingValue`] type.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    /// Parse `text` (as a flag, a variable or a file gives it) and store it;
    /// or say what is wrong, as a phrase following the key.
    pub set: fn(&mut Settings, &str) -> Result<(), String>,
    /// The value as the configuration file writes it; the file must give
    /// a value of the same TOML type.
    pub get: fn(&Settings) -> Result<toml::Value, String>,
    /// The only texts `set` accepts, when they are few (listed by `--help`).
    pub choices: &'static [&'static str],
}

/// The [`Field`] of `settings.$path`.
macro_rules! field {
    ($($path:ident).+) => {
        $crate::settings::Field {
            set: |settings, text| {
                settings.$($path).+ = $crate::settings::SettingValue::parse(text)?;
                Ok(())
            },
            get: |settings| $crate::settings::SettingValue::print(&settings.$($path).+),
            choices: $crate::settings::value::choices(|settings| &settings.$($path).+),
        }
    };
}
use field;

impl Setting {
    /// The key without its section: `burst` for `quota.burst`.
    pub fn name(&self) -> &'static str {
        self.key.rsplit('.').next().unwrap_or(self.key)
    }

    /// The section: `Some("quota")` for `quota.burst`.
    pub fn section(&self) -> Option<&'static str> {
        self.key.rsplit_once('.').map(|(section, _)| section)
    }

    /// The flag without its dashes: `quota-burst`.
    pub fn flag(&self) -> String {
        self.flag.map_or_else(|| self.derived_flag(), str::to_owned)
    }

    /// The name a flag would have, were it not renamed.
    fn derived_flag(&self) -> String {
        self.key.replace(['.', '_'], "-")
    }

    /// The environment variable: `CDS_QUOTA_BURST`.
    pub fn env(&self) -> String {
        format!("CDS_{}", self.flag().replace('-', "_").to_uppercase())
    }

    /// What the setting does, followed by its default; for `--help` (without
    /// the final full stop, as clap writes help).
    pub fn help(&self) -> String {
        let about = self.about.strip_suffix('.').unwrap_or(self.about);
        format!("{about} [default: {}]", self.default)
    }

    /// Every way to set it, for errors: "--quota-burst, CDS_QUOTA_BURST or
    /// `quota.burst` in the configuration file".
    pub fn where_set(&self) -> String {
        format!(
            "--{}, {} or `{}` in the configuration file",
            self.flag(),
            self.env(),
            self.key
        )
    }

    /// Parse `text` into `settings`, or say what is wrong with it (a
    /// phrase to follow the key).
    pub fn set(&self, settings: &mut Settings, text: &str) -> Result<(), String> {
        (self.field.set)(settings, text)
    }

    /// The value in `settings`, as the configuration file writes it.
    pub fn get(&self, settings: &Settings) -> Result<toml::Value, String> {
        (self.field.get)(settings)
    }
}

/// The setting of `key` (`quota.burst`).
pub fn setting(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

/// Where the setting `key` comes from, for errors: every way to set it.
pub fn where_set(key: &str) -> String {
    setting(key).map_or_else(
        || format!("`{key}` in the configuration file"),
        Setting::where_set,
    )
}
