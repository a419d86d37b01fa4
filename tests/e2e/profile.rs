//! Server profiles: a client refuses a server outside the profile its app
//! ships (another key, another suite, too many bucket bits) before it sends
//! anything derived from a contact, and keeps working across a key rotation
//! whose next key was announced and shipped ahead of time.

use cds_client::{BucketMode, ClientError, DEFAULT_MAX_BUCKET_BITS, ServerProfile};
use cds_core::{BucketBits, KeyPair, PublicKey};
use cds_tests::{TEST_ACCOUNT, TestServer, label_of, us};

fn bits(b: u8) -> BucketBits {
    BucketBits::new(b).expect("valid bucket bits")
}

fn profile(keys: &[PublicKey], ceiling: u8) -> ServerProfile {
    ServerProfile::new(keys.iter().copied(), bits(ceiling)).expect("valid profile")
}

fn other_key() -> PublicKey {
    *KeyPair::generate(&mut rand::rng()).public()
}

#[tokio::test]
async fn a_client_with_the_right_profile_discovers() {
    let server = TestServer::start().await;
    server.register("+12015550123", "alice", true).await;
    let key = server.public_key().await;
    // Parsed from its text, as an app compiles it in; the server's key is
    // one of several accepted ones.
    let text = profile(&[other_key(), key], 4).to_string();
    let mut client = server
        .client_builder(TEST_ACCOUNT)
        .profile(text.parse().expect("the text form parses"))
        .bucket_mode(BucketMode::ContactsOnly)
        .connect()
        .await
        .expect("the server is inside the profile");
    let found = client
        .discover(&["+12015550123", "+12015550199"], us())
        .await
        .expect("discovers");
    assert_eq!(label_of(&found[0]).as_deref(), Some("alice"));
    assert_eq!(label_of(&found[1]), None);
    assert_eq!(client.last_report().evaluated, 2);
    server.stop().await;
}

#[tokio::test]
async fn a_profile_without_the_servers_key_is_refused_before_any_discover() {
    let server = TestServer::start().await;
    server.register("+12015550123", "alice", true).await;
    let err = server
        .client_builder(TEST_ACCOUNT)
        .profile(profile(&[other_key(), other_key()], 16))
        .connect()
        .await
        .expect_err("the server's key is not in the profile");
    assert!(matches!(err, ClientError::PublicKeyMismatch), "{err:?}");
    assert!(err.to_string().contains("profile"), "{err}");
    // The refusal comes from connect(): no client exists that could send a
    // Discover (the refusal at a later refresh is pinned by
    // a_client_keeps_working_across_a_rotation_to_the_announced_key).
    assert_eq!(server.stats().await.evaluated_elements, 0);
    server.stop().await;
}

#[tokio::test]
async fn a_server_announcing_more_bucket_bits_than_the_ceiling_is_refused() {
    let server = TestServer::start_with(|c| c.bucket_bits = bits(12)).await;
    let key = server.public_key().await;
    let err = server
        .client_builder(TEST_ACCOUNT)
        .profile(profile(&[key], 8))
        .bucket_mode(BucketMode::ContactsOnly)
        .connect()
        .await
        .expect_err("12 bucket bits are above the ceiling of 8");
    assert!(
        matches!(
            err,
            ClientError::BucketBitsAboveCeiling {
                announced: 12,
                ceiling: 8
            }
        ),
        "{err:?}"
    );
    assert_eq!(server.stats().await.evaluated_elements, 0);
    // The same server is fine for a profile whose ceiling allows 12 bits.
    server
        .client_builder(TEST_ACCOUNT)
        .profile(profile(&[key], 12))
        .connect()
        .await
        .expect("12 bits are within a ceiling of 12");
    server.stop().await;
}

#[tokio::test]
async fn without_a_profile_the_default_ceiling_applies() {
    let above = DEFAULT_MAX_BUCKET_BITS + 1;
    let server = TestServer::start_with(|c| c.bucket_bits = bits(above)).await;
    let err = server
        .client_builder(TEST_ACCOUNT)
        .connect()
        .await
        .expect_err("above the default ceiling");
    assert!(
        matches!(err, ClientError::BucketBitsAboveCeiling { announced, ceiling }
            if announced == above && ceiling == DEFAULT_MAX_BUCKET_BITS),
        "{err:?}"
    );
    // A pinned key is a profile of one key with the same ceiling.
    let err = server
        .client_builder(TEST_ACCOUNT)
        .pin_public_key(server.public_key().await)
        .connect()
        .await
        .expect_err("pinning the key does not raise the ceiling");
    assert!(
        matches!(err, ClientError::BucketBitsAboveCeiling { .. }),
        "{err:?}"
    );
    assert_eq!(server.stats().await.evaluated_elements, 0);
    server.stop().await;
}

fn key_of(bytes: &[u8]) -> PublicKey {
    PublicKey::from_slice(bytes).expect("a valid public key")
}

#[tokio::test]
async fn a_client_keeps_working_across_a_rotation_to_the_announced_key() {
    let server = TestServer::start().await;
    server.register("+12015550123", "alice", true).await;
    let current = server.public_key().await;
    let before = server.profile_keys().await;
    assert_eq!(key_of(&before.public_key), current);
    assert!(before.next_public_key.is_empty(), "nothing announced yet");

    let announced = server.announce_next_key().await;
    assert!(announced.created);
    let again = server.announce_next_key().await;
    assert!(!again.created, "a second call returns the same key");
    assert_eq!(
        (again.public_key.clone(), again.epoch),
        (announced.public_key.clone(), announced.epoch)
    );
    let next = key_of(&announced.public_key);
    assert_ne!(next, current);
    let listed = server.profile_keys().await;
    assert_eq!(key_of(&listed.public_key), current);
    assert_eq!(key_of(&listed.next_public_key), next);
    assert_eq!(listed.next_epoch, announced.epoch);
    assert_eq!(listed.bucket_bits, 4);

    // The app ships both keys; another app still ships the old one alone.
    let mut both = server
        .client_builder(TEST_ACCOUNT)
        .profile(profile(&[current, next], 4))
        .connect()
        .await
        .expect("the current key is in the profile");
    let mut old_only = server
        .client_builder("old-app")
        .profile(profile(&[current], 4))
        .connect()
        .await
        .expect("the current key is in the profile");
    for client in [&mut both, &mut old_only] {
        let found = client
            .discover(&["+12015550123"], us())
            .await
            .expect("discovers");
        assert_eq!(label_of(&found[0]).as_deref(), Some("alice"));
    }

    let rotated = server.rotate_key().await;
    assert!(
        rotated.announced,
        "the rotation switched to the announced key"
    );
    assert_eq!(rotated.epoch, announced.epoch);
    assert_eq!(server.public_key().await, next);

    // The same client refreshes by itself and accepts the new key.
    let found = both
        .discover(&["+12015550123"], us())
        .await
        .expect("the announced key is in the profile");
    assert_eq!(label_of(&found[0]).as_deref(), Some("alice"));
    assert_eq!(both.params().public_key, next);

    // The old profile is refused after the rotation, and nothing more is evaluated.
    let evaluated = server.stats().await.evaluated_elements;
    let err = old_only
        .discover(&["+12015550199"], us())
        .await
        .expect_err("the new key is not in the old profile");
    assert!(matches!(err, ClientError::PublicKeyMismatch), "{err:?}");
    let err = old_only
        .discover(&["+12015550199"], us())
        .await
        .expect_err("still refused: the refused configuration was not kept");
    assert!(matches!(err, ClientError::PublicKeyMismatch), "{err:?}");
    let err = server
        .client_builder("old-app")
        .profile(profile(&[current], 4))
        .connect()
        .await
        .expect_err("a new client with the old profile is refused too");
    assert!(matches!(err, ClientError::PublicKeyMismatch), "{err:?}");
    assert_eq!(server.stats().await.evaluated_elements, evaluated);

    // The announcement is used up; the next rotation makes a fresh key.
    let after = server.profile_keys().await;
    assert_eq!(key_of(&after.public_key), next);
    assert!(after.next_public_key.is_empty());
    let fresh = server.rotate_key().await;
    assert!(!fresh.announced);
    assert_ne!(server.public_key().await, next);
    server.stop().await;
}

#[tokio::test]
async fn an_announced_key_survives_a_restart_and_is_the_one_rotated_to() {
    let mut server = TestServer::start().await;
    let announced = server.announce_next_key().await;
    server.restart().await;
    let again = server.announce_next_key().await;
    assert!(!again.created);
    assert_eq!(again.public_key, announced.public_key);
    assert_eq!(
        server.profile_keys().await.next_public_key,
        announced.public_key
    );
    let rotated = server.rotate_key().await;
    assert!(rotated.announced);
    assert_eq!(rotated.epoch, announced.epoch);
    server.restart().await;
    let after = server.profile_keys().await;
    assert_eq!(after.public_key, announced.public_key);
    assert!(after.next_public_key.is_empty());
    server.stop().await;
}
