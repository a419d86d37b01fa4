//! The server's secrets stay with the server's user: it refuses to start
//! when the data directory, or a file holding a secret (the OPRF keys, the
//! development issuer key, the admin token, the TLS private keys), can be
//! read or written by group or others, and it creates its store files for
//! its user only.
//!
//! Unix only: elsewhere file modes do not exist and every check passes
//! (protect the directory with the platform's access control lists).

use std::io::Write;
use std::path::Path;

use rand::Rng;
use zeroize::Zeroizing;

use crate::error::ServerError;
use crate::keystore;

/// The files of the data directory that hold a secret, and how errors name
/// them.
pub(crate) const DATA_DIR_SECRETS: &[(&str, &str)] = &[
    (keystore::KEY_FILE, "the OPRF key file"),
    (keystore::NEXT_KEY_FILE, "the pending OPRF key file"),
    (keystore::ANNOUNCED_KEY_FILE, "the announced OPRF key file"),
    (keystore::ISSUER_FILE, "the issuer key file"),
];

/// Permission bits that let group or others read or write.
#[cfg(unix)]
const OPEN_TO_OTHERS: u32 = 0o066;

/// The permission bits of `path`, or `None` if it does not exist.
#[cfg(unix)]
fn mode(path: &Path, what: &'static str) -> Result<Option<u32>, ServerError> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(m.permissions().mode() & 0o7777)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ServerError::Io {
            what,
            path: path.to_owned(),
            source,
        }),
    }
}

/// Refuse a data directory that group or others can read or write.
pub(crate) fn check_data_dir(dir: &Path) -> Result<(), ServerError> {
    #[cfg(unix)]
    if let Some(mode) = mode(dir, "cannot read the mode of the data directory")?
        && mode & OPEN_TO_OTHERS != 0
    {
        return Err(ServerError::DataDirOpen {
            path: dir.to_owned(),
            mode,
        });
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Refuse a secret file (`what`, for the message) that group or others can
/// read or write. A missing file passes: reading it reports that.
pub(crate) fn check_secret(path: &Path, what: &'static str) -> Result<(), ServerError> {
    #[cfg(unix)]
    if let Some(mode) = mode(path, "cannot read the mode of a secret file")?
        && mode & OPEN_TO_OTHERS != 0
    {
        return Err(ServerError::SecretOpen {
            what,
            path: path.to_owned(),
            mode,
        });
    }
    #[cfg(not(unix))]
    let _ = (path, what);
    Ok(())
}

/// Create `path` empty, for its owner only (0600), unless it exists: so a
/// store that opens it (redb creates files 0666 less the umask) finds it
/// private from the first byte on.
pub(crate) fn create_private(path: &Path) -> Result<(), ServerError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(ServerError::Io {
            what: "cannot create the store file",
            path: path.to_owned(),
            source,
        }),
    }
}

/// How errors name a file [`write_new_private`] writes: when something is
/// there already, when it cannot be created, when it cannot be written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewFileErrors {
    pub(crate) exists: &'static str,
    pub(crate) create: &'static str,
    pub(crate) write: &'static str,
}

/// Write `contents` to a new file at `path`, for its owner only (0600),
/// and sync it. Refuses if anything is there already (create_new also
/// refuses a dangling symbolic link).
pub(crate) fn write_new_private(
    path: &Path,
    contents: &[u8],
    errors: NewFileErrors,
) -> Result<(), ServerError> {
    let io = |what| {
        move |source| ServerError::Io {
            what,
            path: path.to_owned(),
            source,
        }
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            io(errors.exists)(e)
        } else {
            io(errors.create)(e)
        }
    })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(io(errors.write))
}

/// Write a fresh 256-bit secret, as 64 hex digits and a newline, to a new
/// file at `path` as [`write_new_private`] does.
pub(crate) fn create_hex_secret(path: &Path, errors: NewFileErrors) -> Result<(), ServerError> {
    let mut secret = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(secret.as_mut());
    let mut text = Zeroizing::new([0u8; 65]);
    hex::encode_to_slice(secret.as_ref(), &mut text[..64])
        .map_err(|_| ServerError::Task("hex encoding of 32 bytes needs 64 digits".into()))?;
    text[64] = b'\n';
    write_new_private(path, text.as_ref(), errors)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn a_secret_open_to_group_or_others_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("secret");
        std::fs::write(&file, "x").expect("writes");
        for open in [0o640, 0o604, 0o620, 0o602, 0o666] {
            chmod(&file, open);
            let message = check_secret(&file, "the test secret")
                .expect_err("refused")
                .to_string();
            assert!(
                message.contains(&format!("chmod 600 {}", file.display())),
                "{message}"
            );
        }
        for private in [0o600, 0o400, 0o700, 0o611] {
            chmod(&file, private);
            check_secret(&file, "the test secret").expect("private enough");
        }
        check_secret(&dir.path().join("missing"), "x").expect("reading it will tell");
    }

    #[test]
    fn a_data_directory_open_to_group_or_others_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        for open in [0o750, 0o705, 0o730, 0o777] {
            chmod(dir.path(), open);
            let message = check_data_dir(dir.path()).expect_err("refused").to_string();
            assert!(
                message.contains(&format!("chmod 700 {}", dir.path().display())),
                "{message}"
            );
        }
        for private in [0o700, 0o711] {
            chmod(dir.path(), private);
            check_data_dir(dir.path()).expect("private enough");
        }
    }

    #[test]
    fn a_store_file_is_created_for_its_owner_and_an_existing_one_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store");
        create_private(&path).expect("creates");
        let mode = std::fs::metadata(&path)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, "kept").expect("writes");
        create_private(&path).expect("exists already");
        assert_eq!(std::fs::read_to_string(&path).expect("reads"), "kept");
    }
}
