//! The flags and `CDS_*` environment variables of the settings, built with
//! clap's builder from the table.

use clap::builder::PossibleValuesParser;
use clap::{Arg, ArgMatches, Args, Command, FromArgMatches};

use super::{SETTINGS, Setting, Settings};

/// The settings given as flags or environment variables (clap lets a flag
/// win over its variable), as text; every one checked to parse.
#[derive(Clone, Debug, Default)]
pub struct SettingArgs {
    given: Vec<(&'static Setting, String)>,
}

impl SettingArgs {
    /// Replace in `settings` whatever a flag or an environment variable
    /// sets.
    pub fn apply(&self, settings: &mut Settings) -> Result<(), String> {
        for (setting, text) in &self.given {
            setting
                .set(settings, text)
                .map_err(|p| problem(setting, &p))?;
        }
        Ok(())
    }
}

/// What is wrong with the text given for `setting`, naming every way to set
/// it (clap does not say whether a value came from the flag or the
/// environment).
fn problem(setting: &Setting, problem: &str) -> String {
    format!("{} {problem} (set by {})", setting.key, setting.where_set())
}

impl Setting {
    /// The flag of this setting, which reads its `CDS_*` variable too.
    fn arg(&'static self) -> Arg {
        let arg = Arg::new(self.key)
            .long(self.flag())
            .env(self.env())
            .value_name(self.value_name)
            .help(self.help());
        let arg = match self.flag {
            Some(_) => arg.alias(self.derived_flag()),
            None => arg,
        };
        if self.field.choices.is_empty() {
            arg.value_parser(move |text: &str| {
                self.set(&mut Settings::default(), text)
                    .map(|()| text.to_owned())
                    .map_err(|p| problem(self, &p))
            })
        } else if self.field.choices == <bool as super::SettingValue>::CHOICES {
            // A switch: `--flag` alone turns it on.
            arg.value_parser(PossibleValuesParser::new(self.field.choices))
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true")
        } else {
            arg.value_parser(PossibleValuesParser::new(self.field.choices))
        }
    }
}

impl Args for SettingArgs {
    fn augment_args(cmd: Command) -> Command {
        SETTINGS
            .iter()
            .fold(cmd, |cmd, setting| cmd.arg(setting.arg()))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for SettingArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = Self::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for setting in SETTINGS {
            if let Some(text) = matches.get_one::<String>(setting.key) {
                self.given.retain(|(s, _)| s.key != setting.key);
                self.given.push((setting, text.clone()));
            }
        }
        Ok(())
    }
}
