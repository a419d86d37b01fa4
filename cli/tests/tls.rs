//! The `cds` binary over TLS: `cds serve` with certificates, `cds admin`
//! with a client certificate, `cds discover` with a private CA; and the
//! refusal to serve plaintext beyond loopback.

mod common;

use cds_tests::pki::TestPki;
use common::{Served, cds, cds_ok, path, serve_on, serve_with, text};

/// A server with TLS on Discovery and mutual TLS on Admin.
fn tls_serve(data: &std::path::Path, pki: &TestPki) -> Served {
    serve_with(
        data,
        &[
            "--tls-cert",
            path(&pki.server.cert),
            "--tls-key",
            path(&pki.server.key),
            "--admin-tls-cert",
            path(&pki.server.cert),
            "--admin-tls-key",
            path(&pki.server.key),
            "--admin-client-ca",
            path(&pki.ca),
        ],
    )
}

/// `https://127.0.0.1:PORT` as `https://localhost:PORT`, the name the
/// certificate carries.
fn by_name(url: &str) -> String {
    url.replace("127.0.0.1", "localhost")
}

#[test]
fn admin_with_a_client_certificate_and_discover_with_a_private_ca_work_over_tls() {
    let pki = TestPki::new();
    let data = cds_tests::private_tempdir();
    let server = tls_serve(data.path(), &pki);
    assert!(
        server.discovery.starts_with("https://"),
        "{}",
        server.discovery
    );
    let admin = by_name(&server.admin);
    let tls_admin = |args: &[&str]| {
        let mut all = vec![
            "admin",
            "--admin",
            &admin,
            "--ca-file",
            path(&pki.ca),
            "--client-cert",
            path(&pki.client.cert),
            "--client-key",
            path(&pki.client.key),
        ];
        all.extend_from_slice(args);
        cds(&all)
    };
    let registered = tls_admin(&["register", "+12015550123", "--label", "alice"]);
    assert!(registered.status.success(), "{}", text(&registered.stderr));

    // Without the client certificate the Admin listener refuses.
    let refused = cds(&[
        "admin",
        "--admin",
        &admin,
        "--ca-file",
        path(&pki.ca),
        "register",
        "+12015550124",
        "--label",
        "mallory",
    ]);
    assert!(!refused.status.success());

    let issuer_key = data.path().join("issuer.key");
    let token = cds_ok(&[
        "admin",
        "token",
        "--account",
        "me",
        "--issuer-key",
        path(&issuer_key),
    ]);
    let book = data.path().join("book.txt");
    std::fs::write(&book, "(201) 555-0123\n(201) 555-0124\n").expect("book");
    let discovery = by_name(&server.discovery);
    let found = cds(&[
        "discover",
        "--server",
        &discovery,
        "--ca-file",
        path(&pki.ca),
        "--token",
        token.trim(),
        "--region",
        "US",
        path(&book),
    ]);
    let out = text(&found.stdout);
    assert!(found.status.success(), "{}", text(&found.stderr));
    assert!(out.contains("alice"), "{out}");
    assert!(!out.contains("mallory"), "{out}");

    // A client that does not trust the CA is refused with a TLS error.
    let untrusted = cds(&[
        "discover",
        "--server",
        &discovery,
        "--ca-file",
        path(&pki.other_ca),
        "--token",
        token.trim(),
        "--region",
        "US",
        path(&book),
    ]);
    assert!(!untrusted.status.success());
    let message = text(&untrusted.stderr);
    assert!(message.contains("TLS"), "{message}");
    assert!(!message.contains("555"), "{message}");
}

#[test]
fn serving_plaintext_beyond_loopback_is_refused_with_the_flag_to_add() {
    let data = tempfile::tempdir().expect("tempdir");
    let out = cds(&[
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--data-dir",
        path(data.path()),
    ]);
    assert!(!out.status.success());
    let message = text(&out.stderr);
    assert!(message.contains("--tls-cert"), "{message}");
    assert!(
        message.contains("--insecure-behind-terminator"),
        "{message}"
    );
    assert!(
        std::fs::read_dir(data.path())
            .expect("dir")
            .next()
            .is_none(),
        "nothing was created"
    );
}

#[test]
fn behind_a_declared_terminator_plaintext_serves_and_the_log_says_so_once() {
    let data = cds_tests::private_tempdir();
    let mut server = serve_on(
        "0.0.0.0:0",
        data.path(),
        &["--insecure-behind-terminator"],
        "warn",
    );
    let said = server
        .log_lines()
        .iter()
        .filter(|l| l.contains("insecure_behind_terminator"))
        .count();
    assert_eq!(said, 1, "{:?}", server.log_lines());
    assert!(server.terminate().success());
}
