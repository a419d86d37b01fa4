//! Write a throwaway CA and certificates for `localhost` into a directory,
//! to try cds over TLS on one machine (never for production):
//!
//! ```sh
//! cargo run -p cds-tests --example test_pki -- ./pki
//! ```
//!
//! It writes `ca.pem`, `server.pem`/`server.key` (for localhost and
//! 127.0.0.1), `client.pem`/`client.key` (an Admin client certificate), and
//! a few certificates tests use to check refusals.

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: test_pki DIR");
        std::process::exit(2);
    };
    let dir = std::path::PathBuf::from(dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {e}", dir.display());
        std::process::exit(1);
    }
    let pki = cds_tests::pki::TestPki::create_in(&dir);
    println!(
        "wrote a test CA ({}), a localhost server certificate ({}, {}) and an Admin client certificate ({}, {})",
        pki.ca.display(),
        pki.server.cert.display(),
        pki.server.key.display(),
        pki.client.cert.display(),
        pki.client.key.display()
    );
}
