//! Writing settings as a configuration file: every setting, each preceded
//! by what it does and its default.

use super::{ConfigFileError, SECTIONS, SETTINGS, Setting, Settings};

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
        let mut out = String::from(PREAMBLE);
        for setting in SETTINGS.iter().filter(|s| s.section().is_none()) {
            self.write(&mut out, setting)?;
        }
        for section in SECTIONS {
            out.push('\n');
            comment(&mut out, section.about);
            out.push_str(&format!("[{}]\n", section.name));
            for setting in SETTINGS
                .iter()
                .filter(|s| s.section() == Some(section.name))
            {
                self.write(&mut out, setting)?;
            }
        }
        Ok(out)
    }

    /// A blank line, the comment of `setting`, and `name = value`.
    fn write(&self, out: &mut String, setting: &Setting) -> Result<(), ConfigFileError> {
        let value = setting
            .get(self)
            .map_err(|reason| ConfigFileError::Unprintable {
                key: setting.key,
                reason,
            })?;
        out.push('\n');
        comment(
            out,
            &format!("{} Default: {}.", setting.about, setting.default),
        );
        out.push_str(&format!("{} = {value}\n", setting.name()));
        Ok(())
    }
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
