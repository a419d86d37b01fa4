//! `cds admin token`: how long a credential may be valid.

use std::time::Duration;

use anyhow::bail;
use cds_server::config::DEFAULT_MAX_CREDENTIAL_LIFETIME;

/// The lifetime in seconds of a credential valid for `valid_for`, or why a
/// server whose max_credential_lifetime is `max_lifetime` (the default if
/// not given) would refuse it.
pub(super) fn credential_lifetime(
    valid_for: Duration,
    max_lifetime: Option<Duration>,
) -> anyhow::Result<u64> {
    let shown = |d: Duration| humantime::format_duration(d).to_string();
    let secs = valid_for.as_secs();
    if secs == 0 {
        bail!("--valid-for must be at least 1s: credentials carry whole seconds");
    }
    match max_lifetime {
        None if valid_for > DEFAULT_MAX_CREDENTIAL_LIFETIME => bail!(
            "--valid-for {} is longer than servers accept by default ({} days, their setting \
             max_credential_lifetime), so the server would refuse the credential: give a shorter \
             --valid-for, or, if the target server's max_credential_lifetime allows more, give it \
             as --max-lifetime",
            shown(valid_for),
            DEFAULT_MAX_CREDENTIAL_LIFETIME.as_secs() / 86_400,
        ),
        Some(max) if secs > max.as_secs() => bail!(
            "--valid-for {} is longer than --max-lifetime {} (the target server's \
             max_credential_lifetime), so the server would refuse the credential: give a shorter \
             --valid-for",
            shown(valid_for),
            shown(max),
        ),
        _ => Ok(secs),
    }
}
