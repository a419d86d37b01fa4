//! The configuration of `cds serve`: the TOML file, its precedence under
//! environment variables and flags, and `--print-config`. The first part
//! runs the real `cds` binary; the second reads and writes files through
//! `cds_cli::settings` directly. Both go through every setting of its table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use cds_cli::settings::{self, ConfigFileError, LogFormat, SECTIONS, SETTINGS, Settings};

/// `cds serve ARGS` in `dir`, with no CDS_* variable but those in `env`.
fn serve(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cds"));
    cmd.current_dir(dir).arg("serve").args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CDS_") {
            cmd.env_remove(name);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("cds runs")
}

/// `cds serve --print-config ARGS`, which must succeed; its standard output.
fn print_config(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec!["--print-config"];
    all.extend_from_slice(args);
    let out = serve(dir, &all, env);
    assert!(
        out.status.success(),
        "cds serve --print-config failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// `cds serve ARGS`, which must fail; its standard error.
fn serve_fails(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = serve(dir, args, env);
    assert!(!out.status.success(), "cds serve {args:?} succeeded");
    String::from_utf8(out.stderr).expect("UTF-8 errors")
}

/// The value of `key` (`quota.burst`) in a TOML document.
fn value_of(document: &str, key: &str) -> toml::Value {
    let table: toml::Table = document.parse().expect("valid TOML");
    let mut value = toml::Value::Table(table);
    for part in key.split('.') {
        value = value
            .get(part)
            .unwrap_or_else(|| panic!("{key} is missing"))
            .clone();
    }
    value
}

#[test]
fn print_config_of_the_defaults_is_toml_with_every_setting_after_a_comment() {
    let dir = tempfile::tempdir().unwrap();
    // The defaults plus development mode: without it (or an issuer key)
    // the server would not run.
    let printed = print_config(dir.path(), &["--dev"], &[]);

    let table: toml::Table = printed.parse().expect("--print-config prints valid TOML");
    assert_eq!(value_of(&printed, "bucket_bits").as_integer(), Some(8));
    assert_eq!(
        value_of(&printed, "listen").as_str(),
        Some("127.0.0.1:50051")
    );
    assert_eq!(value_of(&printed, "metrics_listen").as_str(), Some(""));
    assert_eq!(value_of(&printed, "shutdown_timeout").as_str(), Some("30s"));
    assert_eq!(
        value_of(&printed, "change_log_retention").as_str(),
        Some("30days")
    );
    let top = SETTINGS.iter().filter(|s| s.section().is_none()).count();
    assert_eq!(
        table.len(),
        top + SECTIONS.len(),
        "the top-level settings and one table per section"
    );

    let lines: Vec<&str> = printed.lines().collect();
    for setting in SETTINGS {
        let (key, name) = (setting.key, setting.name());
        let at = lines
            .iter()
            .position(|l| l.starts_with(&format!("{name} = ")))
            .unwrap_or_else(|| panic!("{key} is not printed"));
        assert!(
            lines[at - 1].starts_with("# "),
            "{key} has no comment above it"
        );
        let comment_start = lines[..at]
            .iter()
            .rposition(|l| !l.starts_with('#'))
            .map_or(0, |i| i + 1);
        let comment = lines[comment_start..at].join(" ");
        assert!(
            comment.contains("Default: "),
            "the comment of {key} does not give its default: {comment}"
        );
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "--print-config started something: it created files"
    );
}

#[test]
fn printed_config_loads_back_with_config_to_the_same_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let key = hex::encode(
        cds_core::CredentialIssuer::from_seed(&[7; 32])
            .verifier()
            .to_bytes(),
    );
    let printed = print_config(
        dir.path(),
        &[
            "--metrics-listen",
            "127.0.0.1:9090",
            "--data-dir",
            "/var/lib/cds \"main\"",
            "--bucket-bits",
            "4",
            "--request-timeout",
            "1m 30s",
            "--change-log-retention",
            "7days",
            "--issuer-public-key",
            &key,
            "--log-format",
            "json",
            "--quota-refill-per-hour",
            "0.5",
            "--overload-max-queue-wait",
            "250ms",
        ],
        &[],
    );
    assert_eq!(
        value_of(&printed, "issuer_public_key").as_str(),
        Some(&*key)
    );
    let file = dir.path().join("cds.toml");
    std::fs::write(&file, &printed).unwrap();

    let again = print_config(dir.path(), &["--config", file.to_str().unwrap()], &[]);
    assert_eq!(again, printed);
}

#[test]
fn environment_overrides_the_file_and_a_flag_overrides_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cds.toml");
    std::fs::write(&file, "bucket_bits = 5\n[quota]\nburst = 50\n").unwrap();
    let file = file.to_str().unwrap();
    let bits = |args: &[&str], env: &[(&str, &str)]| {
        let args = [&["--dev"], args].concat();
        let printed = print_config(dir.path(), &args, env);
        value_of(&printed, "bucket_bits").as_integer().unwrap()
    };

    assert_eq!(bits(&[], &[]), 8, "the default");
    assert_eq!(
        bits(&["--config", file], &[]),
        5,
        "the file over the default"
    );
    assert_eq!(
        bits(&[], &[("CDS_CONFIG", file)]),
        5,
        "CDS_CONFIG names the file"
    );
    let env = [("CDS_CONFIG", file), ("CDS_BUCKET_BITS", "6")];
    assert_eq!(bits(&[], &env), 6, "the environment over the file");
    assert_eq!(
        bits(&["--bucket-bits", "7"], &env),
        7,
        "a flag over the environment"
    );
    let printed = print_config(dir.path(), &["--dev", "--bucket-bits", "7"], &env);
    assert_eq!(
        value_of(&printed, "quota.burst").as_integer(),
        Some(50),
        "what nothing overrides keeps the file's value"
    );
}

#[test]
fn unknown_key_in_the_file_fails_naming_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cds.toml");
    std::fs::write(&file, "bucket_bits = 5\n\n[quota]\nbursts = 5\n").unwrap();
    let stderr = serve_fails(
        dir.path(),
        &["--config", file.to_str().unwrap(), "--print-config"],
        &[],
    );
    assert!(stderr.contains("bursts"), "{stderr}");
    assert!(stderr.contains("cds.toml"), "{stderr}");
    assert!(stderr.contains("line 4"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn malformed_duration_in_the_file_fails_naming_the_file_the_key_and_the_format() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cds.toml");
    std::fs::write(&file, "[overload]\nmax_queue_wait = \"2 fortnights\"\n").unwrap();
    let stderr = serve_fails(dir.path(), &["--config", file.to_str().unwrap()], &[]);
    assert!(stderr.contains("cds.toml, line 2"), "{stderr}");
    assert!(stderr.contains("overload.max_queue_wait"), "{stderr}");
    assert!(stderr.contains("a duration such as \"30s\""), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn malformed_duration_in_a_flag_fails_with_the_expected_format() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = serve_fails(dir.path(), &["--shutdown-timeout", "soon"], &[]);
    assert!(stderr.contains("--shutdown-timeout"), "{stderr}");
    assert!(stderr.contains("a duration such as \"30s\""), "{stderr}");
}

#[test]
fn out_of_range_setting_from_the_environment_fails_before_starting() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = serve_fails(dir.path(), &[], &[("CDS_BUCKET_BITS", "30")]);
    assert!(
        stderr.contains("bucket_bits must be from 0 to 24, not 30"),
        "{stderr}"
    );
    assert!(
        stderr.contains("set by --bucket-bits, CDS_BUCKET_BITS or `bucket_bits`"),
        "{stderr}"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "the server started"
    );
}

#[test]
fn a_postgres_registry_is_set_by_flag_or_environment_and_printed_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let printed = print_config(
        dir.path(),
        &[
            "--dev",
            "--registry",
            "postgres://cds:s3cret@10.0.0.8:5432/cds",
            "--budgets",
            "redis://:hunter2@10.0.0.7:6379/2",
            "--key-encryption-key-file",
            "/etc/cds/kek",
        ],
        &[("CDS_REGISTRY_SCHEMA", "prod_eu")],
    );
    assert_eq!(
        value_of(&printed, "registry").as_str(),
        Some("postgres://cds:<redacted>@10.0.0.8:5432/cds")
    );
    assert_eq!(
        value_of(&printed, "budgets").as_str(),
        Some("redis://:<redacted>@10.0.0.7:6379/2")
    );
    assert_eq!(
        value_of(&printed, "registry_schema").as_str(),
        Some("prod_eu")
    );
    assert!(!printed.contains("s3cret"));
    assert!(!printed.contains("hunter2"));
    let stderr = serve_fails(
        dir.path(),
        &["--dev"],
        &[("CDS_REGISTRY", "redis://127.0.0.1/0")],
    );
    assert!(
        stderr.contains("registry must be a PostgreSQL URL"),
        "{stderr}"
    );
}

#[test]
fn shared_budgets_are_set_by_flag_or_environment_and_only_a_redis_url_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let printed = print_config(
        dir.path(),
        &["--dev", "--budgets", "redis://10.0.0.7:6379/2"],
        &[("CDS_BUDGETS_KEY_PREFIX", "cds:prod:budget:")],
    );
    assert_eq!(
        value_of(&printed, "budgets").as_str(),
        Some("redis://10.0.0.7:6379/2")
    );
    assert_eq!(
        value_of(&printed, "budgets_key_prefix").as_str(),
        Some("cds:prod:budget:")
    );
    let stderr = serve_fails(
        dir.path(),
        &["--dev"],
        &[("CDS_BUDGETS", "postgres://127.0.0.1/budgets")],
    );
    assert!(stderr.contains("budgets must be a Redis URL"), "{stderr}");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "the server started"
    );
}

#[test]
fn an_admin_listener_beyond_loopback_without_a_token_is_refused_before_starting() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = serve_fails(dir.path(), &["--admin-listen", "0.0.0.0:0"], &[]);
    assert!(
        stderr.contains("admin_token_file must be set when admin_listen (0.0.0.0:0)"),
        "{stderr}"
    );
    assert!(stderr.contains("cds admin new-admin-token"), "{stderr}");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "the server started"
    );
    // With a token file it is accepted; "" in a file or the environment
    // means none again.
    let printed = print_config(
        dir.path(),
        &[
            "--dev",
            "--admin-listen",
            "0.0.0.0:0",
            "--insecure-behind-terminator",
        ],
        &[("CDS_ADMIN_TOKEN_FILE", "admin.token")],
    );
    assert_eq!(
        value_of(&printed, "admin_token_file").as_str(),
        Some("admin.token")
    );
    let stderr = serve_fails(
        dir.path(),
        &["--admin-listen", "0.0.0.0:0"],
        &[("CDS_ADMIN_TOKEN_FILE", "")],
    );
    assert!(stderr.contains("admin_token_file must be set"), "{stderr}");
}

#[test]
fn an_unusable_admin_token_file_stops_the_start_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("short.token"), "tooshort\n").unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(
        dir.path().join("short.token"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let stderr = serve_fails(
        dir.path(),
        &[
            "--dev",
            "--admin-token-file",
            "short.token",
            "--data-dir",
            "data",
        ],
        &[],
    );
    assert!(
        stderr.contains("the admin token file short.token holds fewer than 32 characters"),
        "{stderr}"
    );
    assert!(!stderr.contains("tooshort"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "nothing was created");
    let stderr = serve_fails(
        dir.path(),
        &[
            "--dev",
            "--admin-token-file",
            "missing.token",
            "--data-dir",
            "data",
        ],
        &[],
    );
    assert!(
        stderr.contains("cannot read the admin token file at missing.token"),
        "{stderr}"
    );
}

#[test]
fn missing_config_file_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = serve_fails(dir.path(), &["--config", "nowhere.toml"], &[]);
    assert!(
        stderr.contains("cannot read the configuration file nowhere.toml"),
        "{stderr}"
    );
}

#[test]
fn every_setting_has_a_flag_and_an_environment_variable_with_its_default() {
    let dir = tempfile::tempdir().unwrap();
    let out = serve(dir.path(), &["--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for key in SETTINGS.iter().map(|s| s.key) {
        let (flag, env) = match key {
            "max_elements_per_request" => ("max-elements".to_owned(), "MAX_ELEMENTS".to_owned()),
            _ => (
                key.replace(['.', '_'], "-"),
                key.replace('.', "_").to_uppercase(),
            ),
        };
        // A switch shows as `--flag[=<BOOL>]`, the others as `--flag <VALUE>`.
        assert!(
            help.contains(&format!("--{flag} ")) || help.contains(&format!("--{flag}[=")),
            "no --{flag} for {key}"
        );
        assert!(
            help.contains(&format!("[env: CDS_{env}")),
            "no CDS_{env} for {key}"
        );
    }
    assert_eq!(
        help.matches("[default: ").count(),
        SETTINGS.len(),
        "every setting's help gives its default"
    );
}

// Reading and writing files through the library.

fn from_toml(text: &str) -> Result<Settings, ConfigFileError> {
    Settings::from_toml(text, Path::new("cds.toml"))
}

fn error_of(text: &str) -> String {
    from_toml(text)
        .expect_err("the file is refused")
        .to_string()
}

#[test]
fn an_empty_file_is_the_defaults() {
    assert_eq!(from_toml("").unwrap(), Settings::default());
}

#[test]
fn a_partial_file_keeps_the_defaults_of_the_rest() {
    let settings = from_toml(
        "shutdown_timeout = \"1min\"\nlog_format = \"json\"\n[peer]\nrequest_burst = 7\n",
    )
    .unwrap();
    let mut expected = Settings::default();
    expected.server.shutdown_timeout = Duration::from_secs(60);
    expected.server.peer.request_burst = 7;
    expected.log_format = LogFormat::Json;
    assert_eq!(settings, expected);
}

#[test]
fn a_whole_number_is_accepted_where_a_rate_is_expected() {
    let settings = from_toml("[quota]\nrefill_per_hour = 12\n").unwrap();
    assert_eq!(settings.server.quota.refill_per_hour, 12.0);
}

#[test]
fn every_setting_survives_printing_and_reading_back() {
    let mut settings = Settings::default();
    let s = &mut settings.server;
    s.listen = "[::1]:1".parse().unwrap();
    s.admin_listen = "0.0.0.0:2".parse().unwrap();
    s.admin_token_file = Some("/etc/cds/admin token".into());
    s.metrics_listen = Some("127.0.0.1:3".parse().unwrap());
    s.tls_cert = Some("/etc/cds/tls cert.pem".into());
    s.tls_key = Some("/etc/cds/tls.key".into());
    s.admin_tls_cert = Some("admin.pem".into());
    s.admin_tls_key = Some("admin.key".into());
    s.admin_client_ca = Some("backend-ca.pem".into());
    s.insecure_behind_terminator = true;
    s.data_dir = "C:\\data\\cds 'x'".into();
    s.bucket_bits = cds_core::BucketBits::new(0).unwrap();
    s.max_elements_per_request = 5;
    s.max_response_bytes = 6;
    s.request_timeout = Duration::from_millis(7_500);
    s.shutdown_timeout = Duration::ZERO;
    s.change_log_retention = Duration::from_secs(9 * 86_400 + 1);
    s.issuer = Some(cds_core::CredentialIssuer::from_seed(&[1; 32]).verifier());
    s.max_credential_lifetime = Duration::from_secs(3 * 3_600 + 1);
    s.quota.burst = 10;
    s.quota.refill_per_hour = 0.125;
    s.quota.max_in_flight = 11;
    s.peer.max_connections = 12;
    s.peer.requests_per_second = 1e-3;
    s.peer.request_burst = 14;
    s.overload.max_concurrent = 15;
    s.overload.max_queued = 0;
    s.overload.max_queue_wait = Duration::from_nanos(17);
    settings.log_format = LogFormat::Json;

    let printed = settings.to_toml().unwrap();
    assert_eq!(from_toml(&printed).unwrap(), settings, "{printed}");
}

#[test]
fn the_documented_defaults_are_the_defaults() {
    let printed = Settings::default().to_toml().unwrap();
    for doc in SETTINGS {
        if doc.default.ends_with("per CPU core") {
            continue; // depends on the machine
        }
        let value = value_of(&printed, doc.key);
        let shown = match &value {
            toml::Value::String(s) if s.is_empty() => "none".to_owned(),
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        assert!(
            doc.default.starts_with(&shown),
            "{} is documented as {:?} but is {shown:?}",
            doc.key,
            doc.default
        );
    }
}

#[test]
fn a_value_of_the_wrong_kind_names_the_file_line_key_and_what_it_takes() {
    let message = error_of("listen = \"127.0.0.1:1\"\nbucket_bits = \"eight\"\n");
    assert!(
        message.starts_with("cds.toml, line 2: bucket_bits: "),
        "{message}"
    );
    assert!(message.contains("a whole number from 0 to 24"), "{message}");
}

#[test]
fn an_out_of_range_value_names_the_file_and_key() {
    let message = error_of("[quota]\nburst = 0\n");
    assert!(
        message.starts_with("cds.toml: quota.burst must be at least 1"),
        "{message}"
    );
}

#[test]
fn an_unknown_section_is_refused() {
    let message = error_of("[quotas]\nburst = 1\n");
    assert!(
        message.contains("line 1: quotas: unknown field `quotas`"),
        "{message}"
    );
}

#[test]
fn a_bad_issuer_key_names_the_key() {
    let message = error_of("issuer_public_key = \"abcd\"\n");
    assert!(
        message.starts_with("cds.toml, line 1: issuer_public_key: expected 64 hex digits"),
        "{message}"
    );
}

#[test]
fn empty_strings_mean_no_metrics_endpoint_and_no_issuer_key() {
    let settings = from_toml("metrics_listen = \"\"\nissuer_public_key = \"\"\n").unwrap();
    assert_eq!(settings.server.metrics_listen, None);
    assert_eq!(settings.server.issuer, None);
    assert!(!settings.server.dev, "no key is not development mode");
    assert_eq!(
        settings.server.validate().unwrap_err().key,
        "issuer_public_key",
        "a server needs a key or dev; the environment or flags may still give either"
    );
}

#[test]
fn without_an_issuer_key_the_server_starts_only_in_development_mode_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    for env in [&[][..], &[("CDS_ISSUER_PUBLIC_KEY", "")][..]] {
        let stderr = serve_fails(dir.path(), &["--data-dir", "data"], env);
        assert!(
            stderr.contains("issuer_public_key is not set (or empty)")
                && stderr.contains("--issuer-public-key")
                && stderr.contains("--dev"),
            "{stderr}"
        );
        assert!(!dir.path().join("data").exists(), "nothing was created");
    }
    for (args, env) in [
        (&["--dev"][..], &[][..]),
        (&[][..], &[("CDS_DEV", "true")][..]),
    ] {
        let printed = print_config(dir.path(), args, env);
        assert_eq!(value_of(&printed, "dev").as_bool(), Some(true));
    }
    let key = hex::encode(
        cds_core::CredentialIssuer::from_seed(&[7; 32])
            .verifier()
            .to_bytes(),
    );
    let stderr = serve_fails(dir.path(), &["--dev", "--issuer-public-key", &key], &[]);
    assert!(
        stderr.contains("dev cannot be combined with issuer_public_key"),
        "{stderr}"
    );
}

#[test]
fn a_syntax_error_gives_its_line() {
    let message = error_of("bucket_bits = 5\nlisten = \n");
    assert!(
        message.starts_with("cds.toml, line 2: not valid TOML"),
        "{message}"
    );
}

#[test]
fn durations_parse_as_files_and_flags_write_them() {
    assert_eq!(
        settings::parse_duration("30days"),
        Ok(Duration::from_secs(30 * 86_400))
    );
    assert_eq!(
        settings::parse_duration("1h 30min"),
        Ok(Duration::from_secs(5_400))
    );
    assert!(settings::parse_duration("30").is_err());
}

#[test]
fn the_table_names_each_setting_once_and_each_section_it_uses() {
    let mut keys: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), SETTINGS.len(), "a key is in the table twice");
    for setting in SETTINGS {
        if let Some(section) = setting.section() {
            assert!(
                SECTIONS.iter().any(|s| s.name == section),
                "{} is in a section the table does not describe",
                setting.key
            );
        }
        assert!(
            setting.about.ends_with('.'),
            "{}: about is sentences",
            setting.key
        );
    }
}

#[test]
fn a_value_that_parses_but_is_of_another_type_is_refused() {
    let message = error_of("bucket_bits = \"5\"\n");
    assert!(
        message.starts_with("cds.toml, line 1: bucket_bits: must be written as a whole number"),
        "{message}"
    );
    let message = error_of("quota = 5\n");
    assert!(
        message.contains("line 1: quota: expected a [quota] table"),
        "{message}"
    );
}
