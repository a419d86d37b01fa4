//! Server profiles from the command line: `cds admin profile` prints what
//! apps ship, `cds admin announce-key` announces the next key ahead of a
//! rotation, and `cds discover --profile` (or `CDS_PROFILE`) refuses a
//! server outside the profile.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use cds_core::ServerProfile;
use common::{
    CDS, Served, cds, cds_ok, dev_credential, path, register_alice, serve, serve_with, text,
};

/// Register alice and return a credential from the development issuer.
fn setup(served: &Served, dir: &Path) -> String {
    register_alice(served);
    dev_credential(&dir.join("data"))
}

/// `cds discover` of a one-entry book, with `extra` flags and environment.
fn discover(
    served: &Served,
    dir: &Path,
    token: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let book = dir.join("book.txt");
    std::fs::write(&book, "+12015550123\n").expect("writes");
    Command::new(CDS)
        .args(["discover", "--server", &served.discovery, "--token", token])
        .args(["--region", "US", "--json"])
        .args(extra)
        .arg(path(&book))
        .env_remove("CDS_PROFILE")
        .envs(env.iter().copied())
        .output()
        .expect("cds runs")
}

fn found_alice(out: &Output) -> bool {
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    rows[0]["label"] == "alice"
}

fn profile(served: &Served, extra: &[&str]) -> (ServerProfile, String) {
    let mut args = vec!["admin", "profile", "--admin", &served.admin];
    args.extend(extra);
    let out = cds(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let parsed = printed
        .parse()
        .expect("cds admin profile prints a valid profile");
    (parsed, text(&out.stderr))
}

#[test]
fn a_profile_with_the_announced_key_keeps_discover_working_across_a_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = serve(&dir.path().join("data"));
    let token = setup(&served, dir.path());

    // The current key alone, with the server's bucket bits (8) as ceiling.
    let (old, note) = profile(&served, &[]);
    assert_eq!((old.keys().len(), old.max_bucket_bits().get()), (1, 8));
    assert!(
        note.contains("announce-key"),
        "warns of the next rotation: {note}"
    );
    let old_text = old.to_string();
    let out = discover(&served, dir.path(), &token, &["--profile", &old_text], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(found_alice(&out));

    // Announce: the same key twice, durable in the data directory.
    let first = cds_ok(&["admin", "announce-key", "--admin", &served.admin]);
    let second = cds_ok(&["admin", "announce-key", "--admin", &served.admin]);
    assert_eq!(first, second, "announcing is idempotent");
    assert!(dir.path().join("data/oprf-key.announced.v1").exists());
    let (both, _) = profile(&served, &["--max-bucket-bits", "10"]);
    assert_eq!(both.keys().len(), 2);
    assert_eq!(both.keys()[0], old.keys()[0]);
    assert_eq!(hex::encode(both.keys()[1].as_bytes()), first.trim());
    assert_eq!(both.max_bucket_bits().get(), 10);
    let both_text = both.to_string();

    let rotated = cds_ok(&["admin", "rotate-key", "--admin", &served.admin]);
    assert!(
        rotated.contains("the new key is the announced one"),
        "{rotated}"
    );
    assert!(!dir.path().join("data/oprf-key.announced.v1").exists());

    // The shipped profile (here from the environment) still works ...
    let out = discover(
        &served,
        dir.path(),
        &token,
        &[],
        &[("CDS_PROFILE", &both_text)],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(found_alice(&out));
    // ... the one without the announced key is refused, and says why.
    let out = discover(&served, dir.path(), &token, &["--profile", &old_text], &[]);
    assert_eq!(out.status.code(), Some(1));
    let message = text(&out.stderr);
    assert!(
        message.contains("not in the app's server profile"),
        "{message}"
    );
    assert!(!message.contains("12015550123"), "{message}");
}

#[test]
fn discover_refuses_more_bucket_bits_than_its_ceiling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = serve_with(&dir.path().join("data"), &["--bucket-bits", "17"]);
    let token = setup(&served, dir.path());
    // Without a profile: the default ceiling of 16.
    let out = discover(&served, dir.path(), &token, &[], &[]);
    assert_eq!(out.status.code(), Some(1));
    let message = text(&out.stderr);
    assert!(
        message.contains("announces 17 bucket bits, more than the 16"),
        "{message}"
    );
    // A profile that allows 17 bits works.
    let (allowing, _) = profile(&served, &[]);
    assert_eq!(allowing.max_bucket_bits().get(), 17);
    let out = discover(
        &served,
        dir.path(),
        &token,
        &["--profile", &allowing.to_string()],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(found_alice(&out));
}

#[test]
fn a_bad_profile_is_a_command_line_error() {
    for (args, expected) in [
        (
            vec!["--profile", "cds-profile-v2:AQgB"],
            "must start with `cds-profile-v1:`",
        ),
        (
            vec!["--profile", "cds-profile-v1:AQgA"],
            "lists no public key",
        ),
        (
            vec![
                "--profile",
                "cds-profile-v1:AQgBLIUdeVvBL5lOLpxNIeqY7XMA_mc6RGouJyxHIS6_uHU",
                "--pin-key",
                "00",
            ],
            "cannot be used with",
        ),
    ] {
        let mut all = vec!["discover", "--region", "US"];
        all.extend(args);
        all.push("book.txt");
        let out = cds(&all);
        assert_eq!(out.status.code(), Some(2), "{all:?}");
        assert!(
            text(&out.stderr).contains(expected),
            "{}",
            text(&out.stderr)
        );
    }
    let out = cds(&["admin", "profile", "--max-bucket-bits", "25"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("from 0 to 24"),
        "{}",
        text(&out.stderr)
    );
}
