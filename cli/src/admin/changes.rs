//! `cds admin changes`: the registry change feed as JSON lines.

use std::fmt::Write as _;

use anyhow::bail;
use cds_proto::v1::{ListChangesRequest, registry_change};

use super::{Admin, status};

/// Page through the change log; one JSON object per line.
pub(super) async fn changes(
    admin: &mut Admin,
    mut after: u64,
    limit: u64,
) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut left = limit;
    let mut warned = false;
    while left > 0 {
        let page = admin
            .list_changes(ListChangesRequest {
                after,
                limit: u32::try_from(left.min(10_000)).unwrap_or(10_000),
            })
            .await
            .map_err(status)?
            .into_inner();
        if !warned && after.saturating_add(1) < page.oldest_retained {
            eprintln!(
                "warning: changes {}..{} were pruned (past the server's retention) before they were read",
                after + 1,
                page.oldest_retained - 1
            );
            warned = true;
        }
        if page.changes.is_empty() {
            break;
        }
        for c in page.changes {
            let line = match c.change {
                Some(registry_change::Change::Upserted(u)) => serde_json::json!({
                    "seq": c.seq, "at_unix": c.at_unix, "op": "upsert", "e164": u.e164,
                    "label_hex": hex::encode(&u.label), "discoverable": u.discoverable,
                }),
                Some(registry_change::Change::Removed(e164)) => serde_json::json!({
                    "seq": c.seq, "at_unix": c.at_unix, "op": "remove", "e164": e164,
                }),
                None => bail!("the server sent a change without content"),
            };
            let _ = writeln!(out, "{line}");
            after = c.seq;
            left -= 1;
        }
    }
    eprintln!("next: --after {after}");
    Ok(out)
}
