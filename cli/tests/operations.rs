//! Operating the real `cds` binary: a kill in the middle of a key
//! rotation, and the logs of a full workload scanned for user data.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Served, cds, cds_ok, path, serve, serve_logging, text};

/// `n` users in a CSV file: all discoverable, labels `user-<i>`.
fn users_csv(dir: &Path, n: usize, first: u64) -> std::path::PathBuf {
    let mut csv = String::from("e164,label,discoverable\n");
    for i in 0..n as u64 {
        csv.push_str(&format!("+49151{:08},user-{i},true\n", first + i));
    }
    let file = dir.join(format!("users-{first}.csv"));
    std::fs::write(&file, csv).expect("writes");
    file
}

/// `cds admin stats --json` of `served`.
fn stats(served: &Served) -> serde_json::Value {
    let json = cds_ok(&["admin", "stats", "--admin", &served.admin, "--json"]);
    serde_json::from_str(&json).expect("JSON stats")
}

fn epoch(served: &Served) -> String {
    stats(served)["epoch"].as_str().expect("epoch").to_owned()
}

/// Discover `book` (one number per line) with a fresh credential; returns
/// the statuses.
fn discover(served: &Served, data: &Path, book: &Path) -> Vec<String> {
    let issuer_key = data.join("issuer.key");
    let token = cds_ok(&[
        "admin",
        "token",
        "--account",
        "ops",
        "--issuer-key",
        path(&issuer_key),
    ]);
    let out = cds_ok(&[
        "discover",
        "--server",
        &served.discovery,
        "--token",
        token.trim(),
        "--region",
        "US",
        "--json",
        path(book),
    ]);
    let rows: serde_json::Value = serde_json::from_str(&out).expect("JSON output");
    rows.as_array()
        .expect("an array")
        .iter()
        .map(|r| r["status"].as_str().expect("status").to_owned())
        .collect()
}

/// The data directory and a two-number book (one registered by
/// [`users_csv`], one not) in `dir`.
fn data_and_book(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let book = dir.join("book.txt");
    std::fs::write(&book, "+4915100000007\n+4915199999999\n").expect("writes");
    (dir.join("data"), book)
}

/// Import `n` users of [`users_csv`] through `cds admin import`.
fn import_users(served: &Served, dir: &Path, n: usize) {
    let csv = users_csv(dir, n, 0);
    cds_ok(&["admin", "import", "--admin", &served.admin, path(&csv)]);
}

/// What [`discover`] finds for the book of [`data_and_book`].
const EXPECTED: [&str; 2] = ["registered", "not_registered"];

#[test]
fn killed_mid_rotation_the_server_restarts_on_the_old_epoch_and_rotates_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, book) = data_and_book(dir.path());
    let expected = EXPECTED;

    let mut served = serve(&data);
    import_users(&served, dir.path(), 20_000);
    let before = epoch(&served);

    // Start a rotation and kill the server while the next key is pending.
    let mut rotation = std::process::Command::new(common::CDS)
        .args(["admin", "rotate-key", "--admin", &served.admin])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("rotate-key starts");
    let next_key = data.join("oprf-key.next.v1");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !next_key.exists() {
        assert!(Instant::now() < deadline, "the rotation never started");
        std::thread::sleep(Duration::from_millis(2));
    }
    served.child.kill().expect("killed");
    served.child.wait().expect("reaped");
    assert!(!rotation.wait().expect("rotate-key exits").success());
    assert!(next_key.exists(), "killed before the switch");

    // The store is consistent: the old epoch serves, the pending key is gone.
    let mut served = serve(&data);
    assert_eq!(epoch(&served), before);
    assert!(!next_key.exists());
    assert_eq!(discover(&served, &data, &book), expected);

    // A rotation now completes; killed right after, the new epoch survives.
    let out = cds_ok(&["admin", "rotate-key", "--admin", &served.admin]);
    assert!(out.contains("rotated"), "{out}");
    let after = epoch(&served);
    assert_ne!(after, before);
    served.child.kill().expect("killed");
    served.child.wait().expect("reaped");
    let served = serve(&data);
    assert_eq!(epoch(&served), after);
    assert_eq!(discover(&served, &data, &book), expected);
}

#[cfg(unix)]
#[test]
fn sigterm_during_the_table_build_stops_it_cleanly_and_the_next_start_serves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, book) = data_and_book(dir.path());
    let mut served = serve(&data);
    import_users(&served, dir.path(), 30_000);
    assert!(served.terminate().success());

    // Start again and send SIGTERM as soon as the table build begins.
    let mut child = std::process::Command::new(common::CDS)
        .args(["serve", "--dev", "--listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("CDS_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cds serve starts");
    let stderr = child.stderr.take().expect("piped");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let mut log = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("utf-8");
        let starting = line.starts_with("cds is starting");
        log.push(line);
        if starting {
            break;
        }
    }
    common::sigterm(&child);
    log.extend(lines.map_while(Result::ok));
    let status = child.wait().expect("exits");
    let log = log.join("\n");
    assert!(status.success(), "exit status {status:?}\n{log}");
    assert!(
        log.contains("stopped before the record table was built"),
        "{log}"
    );
    assert!(!log.contains("cds is serving"), "{log}");

    // Nothing was harmed: the next start serves every user.
    let served = serve(&data);
    assert_eq!(discover(&served, &data, &book), EXPECTED);
}

#[cfg(unix)]
#[test]
fn a_second_sigterm_exits_at_once_with_code_3_while_a_request_holds_the_stop() {
    use cds_proto::v1::admin_client::AdminClient;
    use cds_proto::v1::{ImportRequest, User};

    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut served = serve_logging(&data, &["--shutdown-timeout", "60s"], "info");
    let registered = |served: &Served| stats(served)["registered"].as_u64().expect("a count");

    // An Import stream that the test never ends keeps a request in flight,
    // so the graceful stop waits for it (up to the 60 s deadline).
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (rows, stream) = tokio::sync::mpsc::channel::<ImportRequest>(1);
    let admin = served.admin.clone();
    let _call = runtime.spawn(async move {
        let mut client = AdminClient::connect(admin).await.expect("connects");
        client
            .import(tokio_stream::wrappers::ReceiverStream::new(stream))
            .await
    });
    runtime
        .block_on(rows.send(ImportRequest {
            users: vec![User {
                e164: "+12015550123".into(),
                label: b"first".to_vec().into(),
                discoverable: true,
            }],
        }))
        .expect("sent");
    // The server applies each message as it arrives: once the user shows,
    // the Import call is certainly running.
    let deadline = Instant::now() + Duration::from_secs(30);
    while registered(&served) == 0 {
        assert!(Instant::now() < deadline, "the import never started");
        std::thread::sleep(Duration::from_millis(20));
    }

    common::sigterm(&served.child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !served
        .log_lines()
        .iter()
        .any(|l| l.contains("shutting down"))
    {
        assert!(Instant::now() < deadline, "the first signal was not seen");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        served.child.try_wait().expect("status").is_none(),
        "the graceful stop waits for the import in flight"
    );

    common::sigterm(&served.child);
    let status = served.child.wait().expect("exits");
    assert_eq!(status.code(), Some(3), "{:?}", served.log_lines());
    drop(rows);

    // The store survives the forced exit: the committed user is there.
    let served = serve(&data);
    assert_eq!(registered(&served), 1);
}

#[test]
fn logs_of_a_full_workload_hold_no_numbers_labels_credentials_or_peer_addresses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let admin_token_file = dir.path().join("admin.token");
    cds_ok(&["admin", "new-admin-token", "--out", path(&admin_token_file)]);
    let admin_secret = std::fs::read_to_string(&admin_token_file).expect("reads");
    let mut served = serve_logging(
        &data,
        &[
            "--admin-token-file",
            path(&admin_token_file),
            "--log-format",
            "json",
            "--quota-burst",
            "30",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        "debug",
    );
    let admin = served.admin.clone();
    let discovery = served.discovery.clone();
    let admin_token = path(&admin_token_file);
    // Refused for want of the Admin token; the refusal is logged too.
    assert!(!cds(&["admin", "stats", "--admin", &admin]).status.success());

    // Users with recognizable numbers and labels.
    let users = dir.path().join("users.csv");
    std::fs::write(
        &users,
        "e164,label,discoverable\n+12015550123,label-alpha,true\n+4915123456789,label-beta,true\n\
         +447400123456,label-gamma,false\nnot-a-number,label-delta,true\n",
    )
    .expect("writes");
    cds(&[
        "admin",
        "import",
        "--admin",
        &admin,
        "--admin-token-file",
        admin_token,
        path(&users),
    ]);
    cds_ok(&[
        "admin",
        "register",
        "--admin",
        &admin,
        "--admin-token-file",
        admin_token,
        "+33612345678",
        "--label",
        "label-epsilon",
    ]);
    cds_ok(&[
        "admin",
        "set-discoverable",
        "--admin",
        &admin,
        "--admin-token-file",
        admin_token,
        "+447400123456",
        "true",
    ]);
    cds(&[
        "admin",
        "register",
        "--admin",
        &admin,
        "--admin-token-file",
        admin_token,
        "+0000",
        "--label",
        "label-zeta",
    ]);

    let issuer_key = data.join("issuer.key");
    let token = cds_ok(&[
        "admin",
        "token",
        "--account",
        "account-omega",
        "--issuer-key",
        path(&issuer_key),
    ])
    .trim()
    .to_owned();
    let book = dir.path().join("book.txt");
    std::fs::write(
        &book,
        "+1 201 555 0123\n+49 1512 3456789\n+44 7400 123456\n+1 201 555 0188\n",
    )
    .expect("writes");
    let big_book = dir.path().join("big.txt");
    let many: String = (0..40)
        .map(|i| format!("+1201555{:04}\n", 3000 + i))
        .collect();
    std::fs::write(&big_book, many).expect("writes");
    let cache = dir.path().join("contacts.cache");
    let discover = |token: &str, book: &Path| {
        cds(&[
            "discover",
            "--server",
            &discovery,
            "--token",
            token,
            "--cache",
            path(&cache),
            "--region",
            "US",
            path(book),
        ])
    };
    assert!(discover(&token, &book).status.success());
    assert!(discover(&token, &book).status.success(), "from the cache");
    assert!(!discover(&token, &big_book).status.success(), "over budget");
    assert!(!discover("forged-credential-kappa", &book).status.success());
    cds_ok(&[
        "admin",
        "rotate-key",
        "--admin",
        &admin,
        "--admin-token-file",
        admin_token,
    ]);
    assert!(
        discover(&token, &book).status.success(),
        "after the rotation"
    );
    cds_ok(&[
        "admin",
        "changes",
        "--admin",
        &admin,
        "--admin-token-file",
        admin_token,
    ]);
    cds_ok(&[
        "admin",
        "unregister",
        "--admin",
        &admin,
        "--admin-token-file",
        admin_token,
        "+33612345678",
    ]);
    cds_ok(&[
        "admin",
        "stats",
        "--admin",
        &admin,
        "--admin-token-file",
        admin_token,
    ]);

    let status = served.terminate();
    assert!(status.success(), "graceful exit, got {status:?}");
    let log = served.log_lines();
    assert!(log.len() > 10, "the workload was logged: {log:?}");
    assert!(
        log.iter().any(|l| l.contains("key rotation switched")),
        "debug logs were on"
    );
    assert!(
        log.iter().any(|l| l.contains("an Admin call was refused")),
        "the refused Admin call was logged"
    );

    let mut forbidden: Vec<String> = vec![
        "2015550123".into(),
        "5123456789".into(),
        "7400123456".into(),
        "612345678".into(),
        "2015550188".into(),
        "20155530".into(),
        "label-".into(),
        "account-omega".into(),
        "forged-credential".into(),
        "Bearer".into(),
        token[..24].to_owned(),
        admin_secret[..24].to_owned(),
    ];
    forbidden.push("not-a-number".into());
    // Listening addresses may be logged; a peer's address (another port) never.
    let own_ports: Vec<String> = [&served.discovery, &served.admin]
        .iter()
        .filter_map(|u| u.rsplit(':').next().map(str::to_owned))
        .collect();
    for line in &log {
        for f in &forbidden {
            assert!(!line.contains(f.as_str()), "log line holds {f:?}: {line}");
        }
        for (i, _) in line.match_indices("127.0.0.1") {
            let rest = &line[i + "127.0.0.1".len()..];
            let port: String = rest
                .strip_prefix(':')
                .unwrap_or("")
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            let is_metrics = line.contains("/metrics") || line.contains("metrics on");
            assert!(
                own_ports.contains(&port) || is_metrics,
                "log line holds a peer address: {line}"
            );
        }
    }
    assert!(text(b"").is_empty());
}
