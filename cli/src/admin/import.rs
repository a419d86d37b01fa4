//! `cds admin import`: users from a CSV file, in chunks.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, bail};
use cds_proto::v1::{ImportRequest, User};
use indicatif::{ProgressBar, ProgressStyle};

use super::{Admin, status};

/// A row left out of the import: its line number and why.
type Skipped = (u64, String);

/// One CSV row that parsed locally, with its line number for error reports.
struct Row {
    line: u64,
    user: User,
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" => Some(true),
        "false" | "0" | "no" | "n" => Some(false),
        _ => None,
    }
}

/// Read the CSV file; rows with a bad column count or discoverable value are
/// reported by line and skipped.
fn read_csv(file: &PathBuf) -> anyhow::Result<(Vec<Row>, Vec<Skipped>)> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 1;
        let record = match record {
            Ok(r) => r,
            Err(_) => {
                problems.push((line, "not valid CSV".to_owned()));
                continue;
            }
        };
        if i == 0
            && record
                .get(0)
                .is_some_and(|f| f.eq_ignore_ascii_case("e164"))
        {
            continue;
        }
        if record.len() != 3 {
            problems.push((
                line,
                format!(
                    "expected 3 columns (e164,label,discoverable), found {}",
                    record.len()
                ),
            ));
            continue;
        }
        let Some(discoverable) = parse_bool(&record[2]) else {
            problems.push((line, "discoverable must be true or false".to_owned()));
            continue;
        };
        rows.push(Row {
            line,
            user: User {
                e164: record[0].to_owned(),
                label: record[1].as_bytes().to_vec().into(),
                discoverable,
            },
        });
    }
    Ok((rows, problems))
}

/// Stream the file's rows to the server; returns the summary line.
pub(super) async fn import(
    admin: &mut Admin,
    file: &PathBuf,
    chunk: usize,
) -> anyhow::Result<String> {
    let (rows, mut problems) = read_csv(file)?;
    let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
    let total = rows.len() as u64;

    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} rows {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    let (tx, rx) = tokio::sync::mpsc::channel::<ImportRequest>(4);
    let sender_bar = bar.clone();
    let sender = tokio::spawn(async move {
        let mut users = Vec::with_capacity(chunk);
        for row in rows {
            users.push(row.user);
            if users.len() == chunk {
                let n = users.len() as u64;
                if tx
                    .send(ImportRequest {
                        users: std::mem::take(&mut users),
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                sender_bar.inc(n);
            }
        }
        if !users.is_empty() {
            let n = users.len() as u64;
            let _ = tx.send(ImportRequest { users }).await;
            sender_bar.inc(n);
        }
    });
    let summary = admin
        .import(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(status)?
        .into_inner();
    let _ = sender.await;
    bar.finish_and_clear();

    let local_rejected = problems.len() as u64;
    for e in &summary.errors {
        let line = lines.get(e.row as usize).copied().unwrap_or(0);
        problems.push((line, e.reason.clone()));
    }
    problems.sort_by_key(|(line, _)| *line);
    for (line, why) in &problems {
        eprintln!("skipped line {line}: {why}");
    }
    if summary.rejected > summary.errors.len() as u64 {
        eprintln!(
            "(the server lists only the first {} rejected rows)",
            summary.errors.len()
        );
    }
    let line = format!(
        "imported {}: {} created, {} updated, {} rejected\n",
        file.display(),
        summary.created,
        summary.updated,
        local_rejected + summary.rejected
    );
    if summary.received != total {
        bail!(
            "the server received {} of {} rows; run the import again",
            summary.received,
            total
        );
    }
    Ok(line)
}
