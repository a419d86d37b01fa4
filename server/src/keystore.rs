//! The OPRF key on disk: created on first start, readable by the server's
//! user only, and the same on every restart until it is rotated.
//!
//! (Over 400 lines: the current, next and announced key files share one
//! format and one set of crash-recovery rules, which read best together.)
//!
//! Rotation is crash-safe by construction: the next epoch's key is written
//! beside the current one ([`NEXT_KEY_FILE`]) and only becomes current by an
//! atomic rename ([`commit_next`]), after which the old file's bytes are
//! overwritten. A crash before the rename leaves the current key in place
//! and a pending key that [`load_or_create`] wipes; a crash after it leaves
//! the new key current. There is no state in between.
//!
//! A next key can also be announced ahead of the rotation
//! ([`announce_next`], [`ANNOUNCED_KEY_FILE`]), so apps can ship it in their
//! server profile before it serves. The next rotation copies it to the
//! pending key file ([`prepare_next`]) and, once it is current, removes the
//! announcement ([`retire_announced`]). Until then a crash changes nothing
//! about it: the announcement outlives a discarded rotation, and one whose
//! key is already current (the crash came between the switch and the
//! removal) is removed at the next start.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use cds_core::{CredentialIssuer, CredentialVerifier, KeyPair, Mode, PublicKey};
use rand::Rng;
use zeroize::Zeroizing;

use crate::error::ServerError;

/// File name of the key inside the data directory.
pub const KEY_FILE: &str = "oprf-key.v1";
/// File name of the next epoch's key while a rotation prepares it.
pub const NEXT_KEY_FILE: &str = "oprf-key.next.v1";
/// File name of the announced next key: created by `AnnounceNextKey`, kept
/// until a rotation has made it current.
pub const ANNOUNCED_KEY_FILE: &str = "oprf-key.announced.v1";
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

/// Load the OPRF key from `dir`, or create and persist a new one.
///
/// A pending next key left by a rotation that never switched (the process
/// died first) is wiped: the current key is still the one clients use.
pub fn load_or_create(dir: &Path) -> Result<Epoch, ServerError> {
    let path = dir.join(KEY_FILE);
    let next = dir.join(NEXT_KEY_FILE);
    let readable = |p: &Path| read_seed(p, HEADER, "cannot read the key file").is_ok();
    if next.exists() && !readable(&path) && readable(&next) {
        // Only a switch whose rename never reached the disk leaves a
        // pending key beside an unreadable current one: finish it.
        commit_next(dir)?;
        tracing::warn!("an interrupted key switch was completed; the new key serves");
    } else if discard_next(dir)? {
        tracing::warn!(
            "an interrupted key rotation was discarded; the current key keeps serving; \
             run `cds admin rotate-key` again"
        );
    }
    let seed = load_or_create_seed(&path, HEADER)?;
    let epoch = epoch_from_seed(&path, &seed)?;
    // A half-written announcement never reached its name: nobody saw it.
    wipe(&temporary(&dir.join(ANNOUNCED_KEY_FILE)))?;
    match retire_announced(dir, epoch.key.public()) {
        Ok(true) => tracing::info!(
            "the announced key is the current key (a rotation switched to it); the announcement was removed"
        ),
        Ok(false) => {}
        // Not needed to serve; announcing, the profile and the next
        // rotation report it.
        Err(e) => tracing::error!(error = %e, "the announced key file cannot be read"),
    }
    Ok(epoch)
}

fn epoch_from_seed(path: &Path, seed: &[u8; 32]) -> Result<Epoch, ServerError> {
    let key = KeyPair::derive(Mode::Voprf, seed, KEY_INFO).map_err(|_| ServerError::KeyFile {
        path: path.to_owned(),
        reason: "the seed does not derive a key",
    })?;
    Ok(Epoch {
        id: epoch_id(key.public()),
        key,
    })
}

/// Create the next epoch's key in [`NEXT_KEY_FILE`] (replacing a pending
/// one), durable before this returns. It is not used until [`commit_next`].
pub fn create_next(dir: &Path) -> Result<Epoch, ServerError> {
    stage_next(dir, &random_seed())
}

/// [`create_next`] with the announced key if there is one (other than
/// `current`), else a fresh one; says whether it is the announced key. The
/// announcement stays until [`retire_announced`], so a rotation that never
/// switches leaves it for the next one.
pub fn prepare_next(dir: &Path, current: &PublicKey) -> Result<(Epoch, bool), ServerError> {
    match read_announced(dir, current)? {
        Some(seed) => Ok((stage_next(dir, &seed)?, true)),
        None => Ok((create_next(dir)?, false)),
    }
}

fn stage_next(dir: &Path, seed: &[u8; 32]) -> Result<Epoch, ServerError> {
    discard_next(dir)?;
    let path = dir.join(NEXT_KEY_FILE);
    write_seed_file(dir, &path, HEADER, seed)?;
    epoch_from_seed(&path, seed)
}

fn random_seed() -> Zeroizing<[u8; 32]> {
    let mut seed = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(seed.as_mut());
    seed
}

/// The announced next key, if [`ANNOUNCED_KEY_FILE`] holds one other than
/// `current`. A file that exists but is not a valid key file is an error:
/// apps may have shipped its key, so it is never replaced silently.
pub fn announced(dir: &Path, current: &PublicKey) -> Result<Option<Epoch>, ServerError> {
    let path = dir.join(ANNOUNCED_KEY_FILE);
    read_announced(dir, current)?
        .map(|seed| epoch_from_seed(&path, &seed))
        .transpose()
}

/// The seed of the announced key, unless there is none or it is `current`.
fn read_announced(
    dir: &Path,
    current: &PublicKey,
) -> Result<Option<Zeroizing<[u8; 32]>>, ServerError> {
    let path = dir.join(ANNOUNCED_KEY_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let seed = read_announced_seed(&path)?;
    let epoch = epoch_from_seed(&path, &seed)?;
    Ok((epoch.key.public() != current).then_some(seed))
}

/// Read the announced key file; a bad one is [`ServerError::AnnouncedKeyFile`].
fn read_announced_seed(path: &Path) -> Result<Zeroizing<[u8; 32]>, ServerError> {
    read_seed(path, HEADER, "cannot read the announced key file").map_err(|e| match e {
        ServerError::KeyFile { path, reason } => ServerError::AnnouncedKeyFile { path, reason },
        other => other,
    })
}

/// Announce the next epoch's key: the one already announced (other than
/// `current`), or a new one written to [`ANNOUNCED_KEY_FILE`] (mode 0600,
/// written beside and renamed, durable before this returns). Says whether
/// it was created now. Callers serialize announcements.
pub fn announce_next(dir: &Path, current: &PublicKey) -> Result<(Epoch, bool), ServerError> {
    let path = dir.join(ANNOUNCED_KEY_FILE);
    if let Some(epoch) = announced(dir, current)? {
        return Ok((epoch, false));
    }
    // An announcement of the current key is spent: replace it.
    retire_announced(dir, current)?;
    let seed = random_seed();
    write_seed_file(dir, &path, HEADER, &seed)?;
    Ok((epoch_from_seed(&path, &seed)?, true))
}

/// Wipe and remove the announcement if its key is `current` (a rotation
/// switched to it); returns whether it did. Another announced key is kept.
pub fn retire_announced(dir: &Path, current: &PublicKey) -> Result<bool, ServerError> {
    let path = dir.join(ANNOUNCED_KEY_FILE);
    if !path.exists() {
        return Ok(false);
    }
    let seed = read_announced_seed(&path)?;
    if epoch_from_seed(&path, &seed)?.key.public() != current {
        return Ok(false);
    }
    let removed = wipe(&path)?;
    sync_dir(dir);
    Ok(removed)
}

/// Make the pending next key the current one: one atomic rename, then the
/// old key file's bytes are overwritten with zeros (through a handle opened
/// before the rename, so the new key is in place before anything is wiped).
///
/// Overwriting cannot reach copies a copy-on-write filesystem, an SSD's
/// wear levelling or a backup keeps: wipe those by policy.
pub fn commit_next(dir: &Path) -> Result<(), ServerError> {
    let current = dir.join(KEY_FILE);
    let next = dir.join(NEXT_KEY_FILE);
    let old = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&current)
        .ok();
    fs::rename(&next, &current).map_err(io("cannot move the new key file into place", &current))?;
    // Wipe the old key only once the rename is on disk: otherwise a crash
    // could leave the name pointing at the wiped file.
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("cannot make the key switch durable", dir))?;
    if let Some(mut old) = old {
        // Best effort: the switch has happened whatever this does.
        if let Err(e) = zero_fill(&mut old) {
            tracing::warn!(error = %e, "the retired key file could not be overwritten");
        }
    }
    Ok(())
}

/// Wipe and remove a pending next key (and a half-written one); returns
/// whether there was one.
pub fn discard_next(dir: &Path) -> Result<bool, ServerError> {
    let next = dir.join(NEXT_KEY_FILE);
    wipe(&temporary(&next))?;
    let found = wipe(&next)?;
    if found {
        sync_dir(dir);
    }
    Ok(found)
}

/// Overwrite a key file with zeros (best effort) and remove it; returns
/// whether it existed.
fn wipe(path: &Path) -> Result<bool, ServerError> {
    match OpenOptions::new().write(true).open(path) {
        Ok(mut f) => {
            let _ = zero_fill(&mut f);
            fs::remove_file(path).map_err(io("cannot remove the key file", path))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io("cannot open the key file", path)(e)),
    }
}

/// Overwrite a file's bytes with zeros and wait for the disk.
fn zero_fill(f: &mut fs::File) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(0))?;
    std::io::copy(&mut std::io::repeat(0).take(len), f)?;
    f.sync_all()
}

/// Best-effort directory sync (where a failure only costs durability of a
/// file that is about to be re-created or deleted anyway).
fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Read the seed of a key file with `header` (the text is wiped after
/// parsing); `what` names the failure to read it.
fn read_seed(
    path: &Path,
    header: &str,
    what: &'static str,
) -> Result<Zeroizing<[u8; 32]>, ServerError> {
    let text = Zeroizing::new(fs::read_to_string(path).map_err(io(what, path))?);
    parse(path, &text, header)
}

/// Where a key file is written before it is renamed into place.
fn temporary(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// File name of the development credential issuer key in the data directory.
pub const ISSUER_FILE: &str = "issuer.key";
const ISSUER_HEADER: &str = "cds-issuer-key v1\n";

/// Development mode: the credential issuer key in `dir`, created on first
/// use. The server only ever uses its public half; the file is there for
/// `cds admin token`. Production servers are given the messenger
/// backend's public key instead and hold no issuer secret at all.
pub fn load_or_create_dev_issuer(dir: &Path) -> Result<CredentialVerifier, ServerError> {
    let seed = load_or_create_seed(&dir.join(ISSUER_FILE), ISSUER_HEADER)?;
    Ok(CredentialIssuer::from_seed(&seed).verifier())
}

/// Read an issuer key file (as written by [`write_issuer`] or created in
/// development mode).
pub fn read_issuer(path: &Path) -> Result<CredentialIssuer, ServerError> {
    let seed = read_seed(path, ISSUER_HEADER, "cannot read the issuer key file")?;
    Ok(CredentialIssuer::from_seed(&seed))
}

/// Write `issuer` to a new file at `path`, readable by its owner only.
pub fn write_issuer(path: &Path, issuer: &CredentialIssuer) -> Result<(), ServerError> {
    if path.exists() {
        return Err(io("refusing to overwrite an existing key file", path)(
            std::io::ErrorKind::AlreadyExists.into(),
        ));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    write_seed_file(dir, path, ISSUER_HEADER, &issuer.to_seed())
}

fn load_or_create_seed(path: &Path, header: &str) -> Result<Zeroizing<[u8; 32]>, ServerError> {
    match fs::read_to_string(path).map(Zeroizing::new) {
        Ok(text) => parse(path, &text, header),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let seed = random_seed();
            let dir = path.parent().unwrap_or(Path::new("."));
            write_seed_file(dir, path, header, &seed)?;
            tracing::info!(file = %path.file_name().map(|f| f.to_string_lossy()).unwrap_or_default(), "created a new key file");
            Ok(seed)
        }
        Err(e) => Err(io("cannot read the key file", path)(e)),
    }
}

fn parse(path: &Path, text: &str, header: &str) -> Result<Zeroizing<[u8; 32]>, ServerError> {
    let bad = |reason| ServerError::KeyFile {
        path: path.to_owned(),
        reason,
    };
    let body = text
        .strip_prefix(header)
        .ok_or_else(|| bad("unknown header"))?;
    let hex_seed = body
        .trim_end()
        .strip_prefix("seed ")
        .ok_or_else(|| bad("missing seed line"))?;
    let mut seed = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_seed, seed.as_mut()).map_err(|_| bad("seed is not 64 hex digits"))?;
    Ok(seed)
}

/// Write a seed file atomically (beside the final name, then renamed), mode 0600.
fn write_seed_file(
    dir: &Path,
    path: &Path,
    header: &str,
    seed: &[u8; 32],
) -> Result<(), ServerError> {
    let mut text = Zeroizing::new(String::with_capacity(header.len() + 5 + 64 + 1));
    text.push_str(header);
    text.push_str("seed ");
    let mut digits = Zeroizing::new([0u8; 64]);
    hex::encode_to_slice(seed, digits.as_mut()).expect("64 digits for 32 bytes");
    text.push_str(std::str::from_utf8(digits.as_ref()).expect("hex digits are ASCII"));
    text.push('\n');
    let tmp = temporary(path);
    let _ = fs::remove_file(&tmp);
    crate::private_files::write_new_private(
        &tmp,
        text.as_bytes(),
        crate::private_files::NewFileErrors {
            exists: "cannot create the key file",
            create: "cannot create the key file",
            write: "cannot write the key file",
        },
    )?;
    fs::rename(&tmp, path).map_err(io("cannot move the key file into place", path))?;
    sync_dir(dir);
    Ok(())
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
    fn dev_issuer_is_created_once_and_matches_the_key_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = load_or_create_dev_issuer(dir.path()).expect("creates");
        let b = load_or_create_dev_issuer(dir.path()).expect("loads");
        assert_eq!(a, b);
        let issuer = read_issuer(&dir.path().join(ISSUER_FILE)).expect("reads");
        assert_eq!(issuer.verifier(), a);
    }

    #[test]
    fn written_issuer_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let issuer = CredentialIssuer::generate(&mut rand::rng());
        let path = dir.path().join("backend.key");
        write_issuer(&path, &issuer).expect("writes");
        assert_eq!(
            read_issuer(&path).expect("reads").verifier(),
            issuer.verifier()
        );
        assert!(write_issuer(&path, &issuer).is_err(), "never overwrites");
    }

    #[test]
    fn committed_next_key_becomes_current_and_the_old_bytes_are_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = load_or_create(dir.path()).expect("creates");
        let old_text = fs::read_to_string(dir.path().join(KEY_FILE)).expect("reads");
        let next = create_next(dir.path()).expect("creates next");
        assert_ne!(next.id, old.id);
        // Until the commit, a restart still serves the old key.
        commit_next(dir.path()).expect("commits");
        assert!(!dir.path().join(NEXT_KEY_FILE).exists());
        let reloaded = load_or_create(dir.path()).expect("loads");
        assert_eq!(reloaded.id, next.id);
        let now = fs::read_to_string(dir.path().join(KEY_FILE)).expect("reads");
        assert_ne!(now, old_text);
    }

    #[test]
    fn a_switch_whose_rename_was_lost_is_completed_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        load_or_create(dir.path()).expect("creates");
        let next = create_next(dir.path()).expect("creates next");
        // The old file wiped in place, the rename not on disk.
        fs::write(dir.path().join(KEY_FILE), [0u8; 86]).expect("writes");
        let reloaded = load_or_create(dir.path()).expect("loads");
        assert_eq!(reloaded.id, next.id);
        assert!(!dir.path().join(NEXT_KEY_FILE).exists());
    }

    #[test]
    fn restart_before_the_switch_discards_the_pending_key_and_keeps_the_current() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = load_or_create(dir.path()).expect("creates");
        create_next(dir.path()).expect("creates next");
        // A half-written temporary file from a crash mid-write, too.
        fs::write(dir.path().join(format!("{NEXT_KEY_FILE}.tmp")), "cds-oprf").expect("writes");
        let reloaded = load_or_create(dir.path()).expect("loads");
        assert_eq!(reloaded.id, old.id);
        assert!(!dir.path().join(NEXT_KEY_FILE).exists());
        assert!(!dir.path().join(format!("{NEXT_KEY_FILE}.tmp")).exists());
    }

    mod decoders {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn key_file_text_never_panics_the_parser(text in ".{0,120}") {
                let _ = parse(Path::new("k"), &text, HEADER);
            }

            #[test]
            fn well_formed_key_files_parse_to_their_seed(seed in any::<[u8; 32]>()) {
                let text = format!("{HEADER}seed {}\n", hex::encode(seed));
                prop_assert_eq!(*parse(Path::new("k"), &text, HEADER).expect("parses"), seed);
            }
        }
    }

    fn public(dir: &Path) -> PublicKey {
        *load_or_create(dir).expect("loads").key.public()
    }

    #[cfg(unix)]
    #[test]
    fn an_announcement_is_durable_private_and_idempotent() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let current = public(dir.path());
        let (first, created) = announce_next(dir.path(), &current).expect("announces");
        assert!(created);
        assert_ne!(first.key.public(), &current);
        let (again, created) = announce_next(dir.path(), &current).expect("announces");
        assert!(!created, "a second call returns the same key");
        assert_eq!(again.id, first.id);
        let path = dir.path().join(ANNOUNCED_KEY_FILE);
        let mode = fs::metadata(&path).expect("exists").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // It survives a restart, and the current key is unchanged.
        assert_eq!(public(dir.path()), current);
        let kept = announced(dir.path(), &current).expect("reads");
        assert_eq!(kept.map(|e| e.id), Some(first.id));
    }

    #[test]
    fn the_next_rotation_uses_the_announced_key_then_removes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let current = public(dir.path());
        let (announced_key, _) = announce_next(dir.path(), &current).expect("announces");
        let (next, used) = prepare_next(dir.path(), &current).expect("stages");
        assert!(used);
        assert_eq!(next.id, announced_key.id);
        commit_next(dir.path()).expect("commits");
        assert!(retire_announced(dir.path(), next.key.public()).expect("retires"));
        assert!(!dir.path().join(ANNOUNCED_KEY_FILE).exists());
        assert_eq!(public(dir.path()), *next.key.public());
        // Without an announcement, a fresh key.
        let (fresh, used) = prepare_next(dir.path(), next.key.public()).expect("stages");
        assert!(!used);
        assert_ne!(fresh.id, next.id);
    }

    #[test]
    fn a_rotation_discarded_by_a_crash_keeps_the_announcement() {
        let dir = tempfile::tempdir().expect("tempdir");
        let current = public(dir.path());
        let (announced_key, _) = announce_next(dir.path(), &current).expect("announces");
        prepare_next(dir.path(), &current).expect("stages");
        // Restart before the switch: the pending key goes, the announcement stays.
        assert_eq!(public(dir.path()), current);
        assert!(!dir.path().join(NEXT_KEY_FILE).exists());
        let kept = announced(dir.path(), &current).expect("reads");
        assert_eq!(kept.map(|e| e.id), Some(announced_key.id));
    }

    #[test]
    fn a_crash_between_the_switch_and_the_removal_is_tidied_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let current = public(dir.path());
        let (announced_key, _) = announce_next(dir.path(), &current).expect("announces");
        prepare_next(dir.path(), &current).expect("stages");
        commit_next(dir.path()).expect("commits");
        // The announcement was not removed yet; a half-written one lies around too.
        fs::write(dir.path().join(format!("{ANNOUNCED_KEY_FILE}.tmp")), "cds").expect("writes");
        let now = load_or_create(dir.path()).expect("loads");
        assert_eq!(now.id, announced_key.id);
        assert!(!dir.path().join(ANNOUNCED_KEY_FILE).exists());
        assert!(
            !dir.path()
                .join(format!("{ANNOUNCED_KEY_FILE}.tmp"))
                .exists()
        );
        // Announcing again makes a new key, not the current one.
        let (fresh, created) = announce_next(dir.path(), now.key.public()).expect("announces");
        assert!(created);
        assert_ne!(fresh.id, now.id);
    }

    #[test]
    fn a_corrupt_announcement_is_reported_never_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let current = public(dir.path());
        let path = dir.path().join(ANNOUNCED_KEY_FILE);
        fs::write(&path, "garbage").expect("writes");
        // The server still starts: serving does not need it.
        assert_eq!(public(dir.path()), current);
        for result in [
            announce_next(dir.path(), &current).map(|_| ()),
            prepare_next(dir.path(), &current).map(|_| ()),
        ] {
            assert!(
                matches!(result, Err(ServerError::AnnouncedKeyFile { .. })),
                "{result:?}"
            );
        }
        assert_eq!(fs::read_to_string(&path).expect("reads"), "garbage");
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
