//! Running the real `cds` binary: a server on ephemeral loopback ports
//! whose log is kept, and one-shot commands.
#![allow(dead_code)] // Each test file uses its own subset.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};

pub const CDS: &str = env!("CARGO_BIN_EXE_cds");

/// A `cds serve` child process, killed when dropped.
pub struct Served {
    pub child: Child,
    pub discovery: String,
    pub admin: String,
    /// Every line the server wrote to stderr so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// Send SIGTERM and wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        sigterm(&self.child);
        self.child.wait().expect("server exits")
    }

    /// The log lines written so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }
}

/// Send SIGTERM to `child`.
pub fn sigterm(child: &Child) {
    let pid = child.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "SIGTERM delivered");
}

/// Start `cds serve` on ephemeral ports (logging warnings only) and read
/// its addresses from its banner.
pub fn serve(data_dir: &Path) -> Served {
    serve_with(data_dir, &[])
}

/// [`serve`] with extra flags.
pub fn serve_with(data_dir: &Path, extra: &[&str]) -> Served {
    serve_logging(data_dir, extra, "warn")
}

/// [`serve_with`] at log filter `log_filter` (`CDS_LOG`).
pub fn serve_logging(data_dir: &Path, extra: &[&str], log_filter: &str) -> Served {
    serve_on("127.0.0.1:0", data_dir, extra, log_filter)
}

/// [`serve_logging`] with Discovery on `listen`. In development mode
/// (`--dev`, as the README's quick start) unless `extra` gives an issuer
/// key.
pub fn serve_on(listen: &str, data_dir: &Path, extra: &[&str], log_filter: &str) -> Served {
    let dev: &[&str] = if extra.contains(&"--issuer-public-key") {
        &[]
    } else {
        &["--dev"]
    };
    let mut child = Command::new(CDS)
        .args([
            "serve",
            "--listen",
            listen,
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .args(dev)
        .args(extra)
        .env("CDS_LOG", log_filter)
        .stderr(Stdio::piped())
        .spawn()
        .expect("cds serve starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    let log = Arc::new(Mutex::new(Vec::new()));
    let banner = loop {
        let line = lines
            .next()
            .expect("cds serve prints a banner")
            .expect("utf-8");
        log.lock().expect("log lock").push(line.clone());
        if line.starts_with("cds is serving") {
            break line;
        }
    };
    // Keep reading stderr so the server never blocks on a full pipe.
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().expect("log lock").push(line);
        }
    });
    let urls: Vec<String> = banner
        .split_whitespace()
        .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
        .map(|w| w.trim_end_matches(',').to_owned())
        .collect();
    Served {
        child,
        discovery: urls[0].clone(),
        admin: urls[1].clone(),
        log,
    }
}

/// Run `cds` with `args` to completion.
pub fn cds(args: &[&str]) -> Output {
    Command::new(CDS).args(args).output().expect("cds runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Run `cds` and insist that it succeeds; returns stdout.
pub fn cds_ok(args: &[&str]) -> String {
    let out = cds(args);
    assert!(
        out.status.success(),
        "cds {args:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Register alice (+12015550123, label `alice`, discoverable) through the
/// Admin listener of `served`.
pub fn register_alice(served: &Served) {
    cds_ok(&[
        "admin",
        "register",
        "+12015550123",
        "--label",
        "alice",
        "--admin",
        &served.admin,
    ]);
}

/// A credential for account `app` from the development issuer whose key
/// lives in `data_dir` (`cds serve --dev`).
pub fn dev_credential(data_dir: &Path) -> String {
    cds_ok(&[
        "admin",
        "token",
        "--account",
        "app",
        "--issuer-key",
        path(&data_dir.join("issuer.key")),
    ])
    .trim()
    .to_owned()
}
