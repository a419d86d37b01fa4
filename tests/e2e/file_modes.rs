//! The server's files and their modes (Unix): a fresh start makes the data
//! directory 0700 and its files 0600, and a data directory or a secret
//! file that group or others can read or write stops the start, naming the
//! file and the `chmod` that fixes it.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cds_core::CredentialIssuer;
use cds_server::ServerConfig;
use cds_server::keystore::{ANNOUNCED_KEY_FILE, ISSUER_FILE, KEY_FILE};
use cds_server::registry::DB_FILE;
use cds_tests::pki::TestPki;
use cds_tests::{private_tempdir, test_config};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("exists")
        .permissions()
        .mode()
        & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Settings for a server on `data`, with a fresh issuer.
fn config(data: &Path) -> ServerConfig {
    test_config(data, &CredentialIssuer::generate(&mut rand::rng()))
}

/// Start and stop a server with `config`.
async fn start_and_stop(config: ServerConfig) {
    cds_server::start(config)
        .await
        .expect("server starts")
        .shutdown()
        .await
        .expect("clean shutdown");
}

/// Start a server with `config`, which must refuse; its message.
async fn refusal(config: ServerConfig) -> String {
    match cds_server::start(config).await {
        Ok(server) => {
            server.shutdown().await.expect("clean shutdown");
            panic!("the server started")
        }
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_fresh_start_makes_the_data_directory_0700_and_its_files_0600() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("new").join("data");
    let mut dev = config(&data);
    dev.issuer = None;
    dev.dev = true;
    start_and_stop(dev).await;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&root.path().join("new")), 0o700);
    for file in [KEY_FILE, ISSUER_FILE, DB_FILE] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
}

#[tokio::test]
async fn a_data_directory_open_to_group_or_others_stops_the_start() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    std::fs::create_dir(&data).expect("creates");
    for open in [0o755, 0o750, 0o703] {
        chmod(&data, open);
        let message = refusal(config(&data)).await;
        assert!(
            message.contains(&format!("chmod 700 {}", data.display())),
            "{message}"
        );
        assert!(
            std::fs::read_dir(&data).expect("lists").next().is_none(),
            "nothing was created in it"
        );
    }
    chmod(&data, 0o700);
    start_and_stop(config(&data)).await;
}

#[tokio::test]
async fn a_key_file_open_to_group_or_others_stops_the_start() {
    let data = private_tempdir();
    start_and_stop(config(data.path())).await;
    let key = data.path().join(KEY_FILE);
    chmod(&key, 0o640);
    let message = refusal(config(data.path())).await;
    assert!(message.contains("the OPRF key file"), "{message}");
    assert!(
        message.contains(&format!("chmod 600 {}", key.display())),
        "{message}"
    );
    chmod(&key, 0o600);

    let announced = data.path().join(ANNOUNCED_KEY_FILE);
    std::fs::copy(&key, &announced).expect("copies");
    chmod(&announced, 0o644);
    let message = refusal(config(data.path())).await;
    assert!(
        message.contains(&format!("chmod 600 {}", announced.display())),
        "{message}"
    );
}

#[tokio::test]
async fn a_development_issuer_key_open_to_others_stops_the_start() {
    let data = private_tempdir();
    let dev = || {
        let mut c = config(data.path());
        c.issuer = None;
        c.dev = true;
        c
    };
    start_and_stop(dev()).await;
    let issuer = data.path().join(ISSUER_FILE);
    chmod(&issuer, 0o604);
    let message = refusal(dev()).await;
    assert!(message.contains("the issuer key file"), "{message}");
    assert!(
        message.contains(&format!("chmod 600 {}", issuer.display())),
        "{message}"
    );
}

#[tokio::test]
async fn an_admin_token_file_open_to_group_or_others_stops_the_start() {
    let root = tempfile::tempdir().expect("tempdir");
    let token = root.path().join("admin.token");
    cds_server::admin_token::create(&token).expect("writes a token");
    chmod(&token, 0o640);
    let data = root.path().join("data");
    let mut c = config(&data);
    c.admin_token_file = Some(token.clone());
    let message = refusal(c.clone()).await;
    assert!(message.contains("the admin token file"), "{message}");
    assert!(
        message.contains(&format!("chmod 600 {}", token.display())),
        "{message}"
    );
    assert!(!data.exists(), "refused before the data directory");
    chmod(&token, 0o600);
    start_and_stop(c).await;
}

#[tokio::test]
async fn a_tls_private_key_open_to_group_or_others_stops_the_start() {
    let pki = TestPki::new();
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let with_tls = |c: &mut ServerConfig| {
        c.tls_cert = Some(pki.server.cert.clone());
        c.tls_key = Some(pki.server.key.clone());
    };
    let with_admin_tls = |c: &mut ServerConfig| {
        c.admin_tls_cert = Some(pki.client.cert.clone());
        c.admin_tls_key = Some(pki.client.key.clone());
    };
    for (adjust, key) in [
        (&with_tls as &dyn Fn(&mut ServerConfig), &pki.server.key),
        (&with_admin_tls, &pki.client.key),
    ] {
        chmod(key, 0o644);
        let mut c = config(&data);
        adjust(&mut c);
        let message = refusal(c.clone()).await;
        assert!(message.contains("the TLS private key file"), "{message}");
        assert!(
            message.contains(&format!("chmod 600 {}", key.display())),
            "{message}"
        );
        assert!(!data.exists(), "refused before the data directory");
        chmod(key, 0o600);
    }
}
