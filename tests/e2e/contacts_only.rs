//! Contacts-only discoverability end to end: a real server on 127.0.0.1
//! with a contacts issuer key, real clients with identity keys.

use cds_client::{BucketMode, Client, Contact};
use cds_core::Label;
use cds_core::contacts_only::{IdentityKeys, IssuerSecret, UploadSignature, upload_message};
use cds_proto::v1::{Discoverability, UploadAllowListRequest};
use cds_tests::{TestServer, label_of, upload_allow_list, us};

const A: &str = "+12015550123";
const B: &str = "+4915123456789";
const C: &str = "+442079460958";

struct World {
    server: TestServer,
    issuer: IssuerSecret,
}

impl World {
    async fn start() -> Self {
        let issuer = IssuerSecret::generate(&mut rand::rng());
        let public = *issuer.public_key();
        let server = TestServer::start_with(|c| c.contacts_issuer = Some(public)).await;
        // A contacts-only, B and C registered and discoverable by everybody.
        server.register(A, "alice", false).await;
        server.register(B, "bob", true).await;
        server.register(C, "carol", true).await;
        server.set_mode(A, Discoverability::Contacts).await;
        Self { server, issuer }
    }

    fn keys(&self, number: &str) -> IdentityKeys {
        self.issuer
            .issue(&cds_core::E164::parse(number).expect("valid"))
    }

    /// An upload of an empty list for `number`, at `issued_at` (ms), signed
    /// with the identity keys of `signer` for `account`: the raw request, so
    /// tests can send what the client never would.
    fn signed_upload(
        &self,
        signer: &str,
        number: &str,
        account: &str,
        issued_at: u64,
    ) -> UploadAllowListRequest {
        let epoch = self.issuer.public_key().epoch();
        let records: Vec<u8> = Vec::new();
        let parsed = cds_core::E164::parse(number).expect("valid");
        let message = upload_message(epoch, account.as_bytes(), &parsed, issued_at, &records);
        let signature = UploadSignature::sign(&self.keys(signer), &message, &mut rand::rng());
        UploadAllowListRequest {
            issuer_epoch: epoch,
            e164: number.into(),
            issued_at,
            records: records.into(),
            signature: signature.to_bytes().to_vec().into(),
            record_format: cds_proto::wire::RECORD_FORMAT,
        }
    }

    /// A client of `account` holding the identity keys of `number`.
    async fn client(&self, account: &str, number: &str, mode: BucketMode) -> Client {
        self.server
            .client_builder(account)
            .identity_keys(self.keys(number))
            .bucket_mode(mode)
            .connect()
            .await
            .expect("connects")
    }

    async fn finds_a(&self, account: &str, number: &str, mode: BucketMode) -> Option<String> {
        let found = self
            .client(account, number, mode)
            .await
            .discover(&[A], us())
            .await
            .expect("discovers");
        label_of(&found[0])
    }

    async fn upload_for_a(&self, allowed: &[&str]) {
        let mut a = self.client("acct-a", A, BucketMode::All).await;
        upload_allow_list(&mut a, allowed, "alice-cts").await;
    }
}

#[tokio::test]
async fn a_listed_contact_finds_a_contacts_only_user_and_nobody_else_does() {
    let world = World::start().await;
    world.upload_for_a(&[B]).await;
    for mode in [BucketMode::All, BucketMode::ContactsOnly] {
        assert_eq!(
            world.finds_a("acct-b", B, mode).await.as_deref(),
            Some("alice-cts"),
            "{mode:?}"
        );
        // C is not listed: with its own keys it finds nothing.
        assert_eq!(world.finds_a("acct-c", C, mode).await, None, "{mode:?}");
    }
    // Nor through normal discovery, without identity keys, with any budget:
    // a contacts-only user has no normal record.
    let plain = world.server.discover(&[A]).await;
    assert!(
        matches!(plain[0], Contact::NotRegistered { .. }),
        "{plain:?}"
    );
    world.server.stop().await;
}

#[tokio::test]
async fn an_enumerator_with_evaluations_and_bs_tags_of_others_still_does_not_find_a() {
    let world = World::start().await;
    world.upload_for_a(&[B]).await;
    // C evaluates A (and many other numbers) through normal discovery with
    // a large budget, and downloads every bucket: A's records are there,
    // but none opens with anything C can compute.
    let mut c = world.client("acct-c", C, BucketMode::All).await;
    let mut book: Vec<String> = (0..200)
        .map(|i| format!("+1201555{:04}", 1000 + i))
        .collect();
    book.push(A.into());
    book.push(B.into());
    let found = c.discover(&book, us()).await.expect("discovers");
    let a_entry = found
        .iter()
        .find(|f| matches!(f, Contact::NotRegistered { number } if number.as_str() == A));
    assert!(a_entry.is_some(), "A must read as not registered for C");
    assert_eq!(c.last_report().found_by_allow_list, 0);
    // C learned the tag B would look for (it knows B's number, not B's
    // keys): with C's own keys the tag for "A allows C" differs from the
    // stored one, and keys that C claims are B's do not verify.
    let b_keys_bytes = world.keys(B).to_bytes();
    let mut forged = b_keys_bytes.to_vec();
    forged[9..17].copy_from_slice(
        &cds_core::E164::parse(C)
            .expect("valid")
            .to_u64()
            .to_be_bytes(),
    );
    assert!(IdentityKeys::from_bytes(&forged, world.issuer.public_key()).is_err());
    world.server.stop().await;
}

#[tokio::test]
async fn removing_b_from_the_list_or_switching_to_nobody_hides_a_at_bs_next_sync() {
    let world = World::start().await;
    world.upload_for_a(&[B, C]).await;
    // B syncs in contacts-only bucket mode and keeps its buckets.
    let mut b = world.client("acct-b", B, BucketMode::ContactsOnly).await;
    let first = b.discover(&[A], us()).await.expect("discovers");
    assert_eq!(label_of(&first[0]).as_deref(), Some("alice-cts"));
    // A removes B.
    world.upload_for_a(&[C]).await;
    let second = b.discover(&[A], us()).await.expect("discovers");
    assert_eq!(label_of(&second[0]), None, "B was removed");
    assert_eq!(
        world.finds_a("acct-c", C, BucketMode::All).await.as_deref(),
        Some("alice-cts")
    );
    // A switches to nobody: C no longer finds A either.
    world.server.set_mode(A, Discoverability::Nobody).await;
    assert_eq!(
        world.finds_a("acct-c", C, BucketMode::ContactsOnly).await,
        None
    );
    // And an upload is refused now.
    let mut a = world.client("acct-a", A, BucketMode::All).await;
    let refused = a
        .upload_allow_list(&[C], us(), &Label::new(b"x".to_vec()).expect("short"))
        .await;
    assert!(refused.is_err(), "{refused:?}");
    world.server.stop().await;
}

#[tokio::test]
async fn a_forged_upload_for_someone_elses_number_is_refused() {
    let world = World::start().await;
    world.upload_for_a(&[B]).await;
    let now = cds_server::unix_now() * 1000;
    let mut discovery =
        cds_proto::v1::discovery_client::DiscoveryClient::connect(world.server.url())
            .await
            .expect("connects");
    // C signs an upload naming A's number with C's own keys.
    let forged = world.signed_upload(C, A, "acct-c", now);
    let refused = discovery
        .upload_allow_list(world.server.authed("acct-c", forged))
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    // A's own valid signature replayed under another account is refused too.
    let replayed = world.signed_upload(A, A, "acct-a", now + 1);
    let refused = discovery
        .upload_allow_list(world.server.authed("acct-c", replayed))
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    // B still finds A: the refused uploads changed nothing.
    assert_eq!(
        world.finds_a("acct-b", B, BucketMode::All).await.as_deref(),
        Some("alice-cts")
    );
    world.server.stop().await;
}

#[tokio::test]
async fn a_restart_and_a_key_rotation_keep_the_allow_list_and_the_mode() {
    let mut world = World::start().await;
    world.upload_for_a(&[B]).await;
    world.server.restart().await;
    assert_eq!(
        world
            .finds_a("acct-b", B, BucketMode::ContactsOnly)
            .await
            .as_deref(),
        Some("alice-cts")
    );
    assert_eq!(world.finds_a("acct-c", C, BucketMode::All).await, None);
    world.server.rotate_key().await;
    assert_eq!(
        world
            .finds_a("acct-b", B, BucketMode::ContactsOnly)
            .await
            .as_deref(),
        Some("alice-cts")
    );
    let plain = world.server.discover(&[A]).await;
    assert!(
        matches!(plain[0], Contact::NotRegistered { .. }),
        "{plain:?}"
    );
    world.server.stop().await;
}

#[tokio::test]
async fn a_replayed_or_older_upload_of_as_own_list_is_refused_and_changes_nothing() {
    let world = World::start().await;
    // An upload A really signed, for its own account: an empty list, which
    // would hide A from everybody.
    let signed_by_a = |issued_at: u64| world.signed_upload(A, A, "acct-a", issued_at);
    let early = cds_server::unix_now() * 1000 - 60_000;
    let mut discovery =
        cds_proto::v1::discovery_client::DiscoveryClient::connect(world.server.url())
            .await
            .expect("connects");
    // Captured now, replayed after A's app uploaded a newer list.
    let captured = signed_by_a(early);
    discovery
        .upload_allow_list(world.server.authed("acct-a", captured.clone()))
        .await
        .expect("A's own upload is accepted");
    world.upload_for_a(&[B]).await;
    for stale in [captured, signed_by_a(early + 1)] {
        let refused = discovery
            .upload_allow_list(world.server.authed("acct-a", stale))
            .await
            .expect_err("an upload no newer than the stored one is refused");
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    }
    // The newer list stands: B still finds A.
    assert_eq!(
        world.finds_a("acct-b", B, BucketMode::All).await.as_deref(),
        Some("alice-cts")
    );
    world.server.stop().await;
}

#[tokio::test]
async fn an_upload_of_an_older_record_format_is_refused_and_changes_nothing() {
    let world = World::start().await;
    world.upload_for_a(&[B]).await;
    let epoch = world.issuer.public_key().epoch();
    let a = cds_core::E164::parse(A).expect("valid");
    // Validly signed by A, but from an app before record format 2 (which
    // did not send the field): its records no finder could open.
    let records: Vec<u8> = Vec::new();
    let issued_at = cds_server::unix_now() * 1000 + 1;
    let message = upload_message(epoch, b"acct-a", &a, issued_at, &records);
    let signature = UploadSignature::sign(&world.keys(A), &message, &mut rand::rng());
    let old = UploadAllowListRequest {
        issuer_epoch: epoch,
        e164: A.into(),
        issued_at,
        records: records.into(),
        signature: signature.to_bytes().to_vec().into(),
        record_format: 0,
    };
    let mut discovery =
        cds_proto::v1::discovery_client::DiscoveryClient::connect(world.server.url())
            .await
            .expect("connects");
    let refused = discovery
        .upload_allow_list(world.server.authed("acct-a", old))
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused.message().contains("upgrade the app"),
        "{}",
        refused.message()
    );
    // The stored list stands: B still finds A.
    assert_eq!(
        world.finds_a("acct-b", B, BucketMode::All).await.as_deref(),
        Some("alice-cts")
    );
    world.server.stop().await;
}
