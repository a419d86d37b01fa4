//! The README walkthrough, run as a newcomer would: the real `cds` binary
//! serving on 127.0.0.1, importing a CSV, discovering an address book.

mod common;

use std::process::Command;

use common::{CDS, cds, cds_ok, path, serve, serve_with, text};

#[test]
fn import_then_discover_prints_registered_contacts_as_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = serve(&dir.path().join("data"));
    let users = dir.path().join("users.csv");
    let csv = "e164,label,discoverable\n+12015550123,alice,true\n+4915123456789,bob,true\n\
               +447400123456,carol,false\nbad,x,true\n";
    std::fs::write(&users, csv).expect("writes");
    let import = cds(&["admin", "import", "--admin", &served.admin, path(&users)]);
    assert!(import.status.success(), "{}", text(&import.stderr));
    let summary = text(&import.stdout);
    assert!(
        summary.contains("3 created, 0 updated, 1 rejected"),
        "{summary}"
    );
    assert!(
        text(&import.stderr).contains("line 5"),
        "bad row by line: {}",
        text(&import.stderr)
    );

    // Development mode: the server created an issuer key in its data
    // directory. As the README: the token goes to a file of mode 0600.
    let issuer_key = dir.path().join("data").join("issuer.key");
    let token = cds(&[
        "admin",
        "token",
        "--account",
        "newcomer",
        "--issuer-key",
        path(&issuer_key),
    ]);
    assert!(token.status.success(), "{}", text(&token.stderr));
    let token_file = dir.path().join("me.token");
    std::fs::write(&token_file, &token.stdout).expect("writes");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600))
            .expect("chmod 600");
    }
    let token = text(&token.stdout).trim().to_owned();

    let book = dir.path().join("book.txt");
    let entries = "(201) 555-0123\n+49 1512 3456789\n+44 7400 123456\nnonsense\n";
    std::fs::write(&book, entries).expect("writes");
    let cache = dir.path().join("contacts.cache");
    let discover = |json: bool| {
        let mut args = vec!["discover", "--server", &served.discovery];
        args.extend(["--cache", path(&cache), "--region", "US", path(&book)]);
        if json {
            args.push("--json");
        }
        let out = Command::new(CDS)
            .args(&args)
            .env("CDS_TOKEN_FILE", &token_file)
            .output()
            .expect("cds runs");
        assert!(
            !text(&out.stdout).contains(&token) && !text(&out.stderr).contains(&token),
            "the token is never printed"
        );
        out
    };

    let out = discover(true);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    let rows = json.as_array().expect("an array");
    let status: Vec<&str> = rows
        .iter()
        .map(|r| r["status"].as_str().expect("status"))
        .collect();
    assert_eq!(
        status,
        ["registered", "registered", "not_registered", "invalid"]
    );
    assert_eq!(rows[0]["label"], "alice");
    assert_eq!(rows[0]["e164"], "+12015550123");
    assert_eq!(rows[3]["reason"], "not_a_number");
    let report = text(&out.stderr);
    assert!(
        report.contains("3 evaluated by the server, 0 from the cache"),
        "{report}"
    );
    assert!(!report.contains("warning"), "an honest server: {report}");

    // The second run reads the cache: nothing new is evaluated.
    let table = discover(false);
    let shown = text(&table.stdout);
    assert!(
        shown.contains("4 entries: 2 registered, 1 not registered, 1 invalid"),
        "{shown}"
    );
    let report = text(&table.stderr);
    assert!(
        report.contains("0 evaluated by the server, 3 from the cache"),
        "{report}"
    );

    let anonymous = cds(&[
        "discover",
        "--server",
        &served.discovery,
        "--region",
        "US",
        path(&book),
    ]);
    assert_eq!(anonymous.status.code(), Some(1));
    assert!(
        text(&anonymous.stderr).contains("credential"),
        "{}",
        text(&anonymous.stderr)
    );

    let stats = cds(&["admin", "stats", "--admin", &served.admin, "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).expect("JSON stats");
    assert_eq!(stats["registered"], 3);
    assert_eq!(stats["discoverable"], 2);
}

#[test]
fn issuer_keygen_writes_a_key_whose_tokens_a_configured_server_accepts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("backend.key");
    let keygen = cds(&["admin", "issuer-keygen", "--out", path(&key)]);
    assert!(keygen.status.success(), "{}", text(&keygen.stderr));
    let public = text(&keygen.stdout).trim().to_owned();
    assert_eq!(public.len(), 64);
    let again = cds(&["admin", "issuer-keygen", "--out", path(&key)]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "an existing key is never overwritten"
    );

    let data = dir.path().join("data");
    let served = serve_with(&data, &["--issuer-public-key", &public]);
    assert!(
        !data.join("issuer.key").exists(),
        "a configured server holds no issuer secret"
    );
    let token = cds(&[
        "admin",
        "token",
        "--account",
        "a",
        "--issuer-key",
        path(&key),
    ]);
    let token = text(&token.stdout).trim().to_owned();
    let book = dir.path().join("book.txt");
    std::fs::write(&book, "+12015550123\n").expect("writes");
    let out = cds(&[
        "discover",
        "--server",
        &served.discovery,
        "--token",
        &token,
        "--region",
        "US",
        path(&book),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[cfg(unix)]
#[test]
fn sigterm_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut served = serve(&dir.path().join("data"));
    let status = served.terminate();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn unreachable_server_is_a_clear_failure_with_exit_code_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let book = dir.path().join("book.txt");
    std::fs::write(&book, "+12015550123\n").expect("writes");
    let out = cds(&[
        "discover",
        "--server",
        "http://127.0.0.1:1",
        "--region",
        "US",
        book.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("error: cannot use the discovery service"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_command_lines_exit_with_code_2() {
    assert_eq!(cds(&["discover"]).status.code(), Some(2));
    assert_eq!(cds(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn unknown_region_is_refused_before_any_network_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let book = dir.path().join("book.txt");
    std::fs::write(&book, "+12015550123\n").expect("writes");
    let out = cds(&[
        "discover",
        "--region",
        "XX",
        book.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("region"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_server_with_an_admin_token_obeys_only_admin_commands_that_send_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("admin.token");
    let out = cds_ok(&["admin", "new-admin-token", "--out", path(&token)]);
    assert!(out.contains("wrote a new admin token"), "{out}");
    let again = cds(&["admin", "new-admin-token", "--out", path(&token)]);
    assert_eq!(again.status.code(), Some(1), "never overwrites a token");

    let served = serve_with(
        &dir.path().join("data"),
        &["--admin-token-file", path(&token)],
    );
    let without = cds(&[
        "admin",
        "register",
        "+12015550123",
        "--admin",
        &served.admin,
    ]);
    assert_eq!(without.status.code(), Some(1));
    let stderr = text(&without.stderr);
    assert!(stderr.contains("Unauthenticated"), "{stderr}");
    assert!(stderr.contains("--admin-token-file"), "{stderr}");

    let with = cds_ok(&[
        "admin",
        "register",
        "+12015550123",
        "--admin",
        &served.admin,
        "--admin-token-file",
        path(&token),
    ]);
    assert_eq!(with.trim(), "registered");
    let stats = cds_ok(&[
        "admin",
        "stats",
        "--json",
        "--admin",
        &served.admin,
        "--admin-token-file",
        path(&token),
    ]);
    assert!(stats.contains("\"registered\":1"), "{stats}");
}
