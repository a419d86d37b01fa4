//! The server's key files (`oprf-key.v1` and the issuer key), damaged or
//! crafted, read by the real loaders from a temporary directory: refused
//! with an error or loaded, never a panic. The first byte chooses the file.
#![no_main]

use std::sync::LazyLock;

use cds_server::keystore;
use libfuzzer_sys::fuzz_target;

static DIR: LazyLock<tempfile::TempDir> = LazyLock::new(|| {
    let shm = std::path::Path::new("/dev/shm");
    let builder = tempfile::Builder::new().prefix("cds-fuzz-keys").clone();
    if shm.is_dir() {
        builder.tempdir_in(shm).expect("a temporary directory")
    } else {
        builder.tempdir().expect("a temporary directory")
    }
});

fuzz_target!(|data: &[u8]| {
    let Some((&which, text)) = data.split_first() else {
        return;
    };
    let dir = DIR.path();
    if which & 1 == 0 {
        let path = dir.join(keystore::ISSUER_FILE);
        std::fs::write(&path, text).expect("a writable directory");
        let _ = keystore::read_issuer(&path);
    } else {
        std::fs::write(dir.join(keystore::KEY_FILE), text).expect("a writable directory");
        let _ = keystore::load_or_create(dir);
    }
});
