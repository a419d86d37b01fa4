//! The OPRF key on disk: created on first start, readable by the server's
//! user only, and the same on every restart.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use cds_core::{KeyPair, Mode, PublicKey};
use rand::Rng;
use zeroize::Zeroizing;

use crate::error::ServerError;

/// File name of the key inside the data directory.
pub const KEY_FILE: &str = "oprf-key.v1";
const HEADER: &str = "cds-oprf-key v1\n";
/// Info string of `DeriveKeyPair` for cds keys.
pub const KEY_INFO: &[u8] = b"cds-v1 oprf key";

/// A key epoch: its identifier and key pair.
#[derive(Debug)]
pub struct Epoch {
    /// Identifier clients name in requests.
    pub id: u64,
    /// The VOPRF key pair.
    pub key: KeyPair,
}

/// `epoch = first 8 bytes, big-endian, of SHA-512("cds-v1-epoch" || pkS)`:
/// distinct keys give distinct epochs, so a client cache can never mix them.
pub fn epoch_id(public_key: &PublicKey) -> u64 {
    use sha2::{Digest, Sha512};
    let h = Sha512::new()
        .chain_update(b"cds-v1-epoch")
        .chain_update(public_key.as_bytes())
        .finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&h[..8]);
    u64::from_be_bytes(id)
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ServerError + 'a {
    move |source| ServerError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// Create `dir` (mode 0700 on Unix) if it does not exist.
pub fn ensure_private_dir(dir: &Path) -> Result<(), ServerError> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
        .map_err(io("cannot create the data directory", dir))
}

/// Load the key from `dir`, or create and persist a new one.
pub fn load_or_create(dir: &Path) -> Result<Epoch, ServerError> {
    let path = dir.join(KEY_FILE);
    let seed = match fs::read_to_string(&path) {
        Ok(text) => parse(&path, &text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(dir, &path)?,
        Err(e) => return Err(io("cannot read the key file", &path)(e)),
    };
    let key = KeyPair::derive(Mode::Voprf, &seed, KEY_INFO).map_err(|_| ServerError::KeyFile {
        path: path.clone(),
        reason: "the seed does not derive a key",
    })?;
    Ok(Epoch {
        id: epoch_id(key.public()),
        key,
    })
}

fn parse(path: &Path, text: &str) -> Result<Zeroizing<[u8; 32]>, ServerError> {
    let bad = |reason| ServerError::KeyFile {
        path: path.to_owned(),
        reason,
    };
    let body = text
        .strip_prefix(HEADER)
        .ok_or_else(|| bad("unknown header"))?;
    let hex_seed = body
        .trim_end()
        .strip_prefix("seed ")
        .ok_or_else(|| bad("missing seed line"))?;
    let mut seed = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_seed, seed.as_mut()).map_err(|_| bad("seed is not 64 hex digits"))?;
    Ok(seed)
}

fn create(dir: &Path, path: &PathBuf) -> Result<Zeroizing<[u8; 32]>, ServerError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(seed.as_mut());
    let text = Zeroizing::new(format!("{HEADER}seed {}\n", hex::encode(seed.as_ref())));
    // Write beside the final name and rename, so a crash never leaves a
    // half-written key file behind.
    let tmp = dir.join(format!("{KEY_FILE}.tmp"));
    let _ = fs::remove_file(&tmp);
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&tmp)
        .map_err(io("cannot create the key file", &tmp))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io("cannot write the key file", &tmp))?;
    fs::rename(&tmp, path).map_err(io("cannot move the key file into place", path))?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    tracing::info!("created a new OPRF key");
    Ok(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/protocol.md §10: the epoch of the RFC 9497 A.1.2 public key.
    #[test]
    fn epoch_id_matches_the_specification_example() {
        let pk = hex::decode("c803e2cc6b05fc15064549b5920659ca4a77b2cca6f04f6b357009335476ad4e")
            .expect("hex");
        let pk = PublicKey::from_slice(&pk).expect("canonical");
        assert_eq!(epoch_id(&pk), 0x846e6b6e2b9826d3);
    }

    #[test]
    fn key_file_written_by_the_specification_example_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = format!("{HEADER}seed {}\n", "a3".repeat(32));
        fs::write(dir.path().join(KEY_FILE), text).expect("writes");
        let epoch = load_or_create(dir.path()).expect("loads");
        assert_eq!(epoch.id, 0x63b85533c500c997);
    }

    #[test]
    fn key_is_created_once_and_reloaded_identically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = load_or_create(dir.path()).expect("creates");
        let b = load_or_create(dir.path()).expect("loads");
        assert_eq!(a.key, b.key);
        assert_eq!(a.id, b.id);
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_readable_by_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        load_or_create(dir.path()).expect("creates");
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn corrupt_key_file_is_refused_not_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(KEY_FILE), "garbage").expect("writes");
        assert!(matches!(
            load_or_create(dir.path()),
            Err(ServerError::KeyFile { .. })
        ));
        assert_eq!(
            fs::read_to_string(dir.path().join(KEY_FILE)).expect("reads"),
            "garbage"
        );
    }
}
