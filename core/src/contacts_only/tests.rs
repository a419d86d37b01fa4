//! Unit and property tests of contacts-only mode.

use proptest::prelude::*;

use super::*;
use crate::record::Label;
use crate::{E164, Error, RecordRef};

const A: &str = "+14155550132";
const B: &str = "+442079460958";
const C: &str = "+4915123456789";

fn number(n: &str) -> E164 {
    E164::parse(n).expect("valid")
}

fn issuer(seed: u8) -> IssuerSecret {
    IssuerSecret::from_seed(&[seed; 32])
}

#[test]
fn both_holders_compute_the_same_pair_key() {
    let issuer = issuer(1);
    let a = issuer.issue(&number(A));
    let b = issuer.issue(&number(B));
    let ab = PairKey::derive(&a, &number(B)).expect("derives");
    let ba = PairKey::derive(&b, &number(A)).expect("derives");
    assert_eq!(ab, ba);
}

#[test]
fn different_pairs_have_different_keys() {
    let issuer = issuer(1);
    let a = issuer.issue(&number(A));
    let ab = PairKey::derive(&a, &number(B)).expect("derives");
    let ac = PairKey::derive(&a, &number(C)).expect("derives");
    assert_ne!(ab, ac);
    let b = issuer.issue(&number(B));
    let bc = PairKey::derive(&b, &number(C)).expect("derives");
    assert_ne!(ab, bc);
}

#[test]
fn keys_of_another_issuer_give_a_different_pair_key() {
    let a = issuer(1).issue(&number(A));
    let wrong_b = issuer(2).issue(&number(B));
    assert_ne!(
        PairKey::derive(&a, &number(B)).expect("derives"),
        PairKey::derive(&wrong_b, &number(A)).expect("derives")
    );
}

#[test]
fn the_keys_of_another_number_give_a_different_pair_key() {
    // C holds keys for C but claims to be B: its key with A differs from A's key with B.
    let issuer = issuer(1);
    let a = issuer.issue(&number(A));
    let c = issuer.issue(&number(C));
    let ab = PairKey::derive(&a, &number(B)).expect("derives");
    let ca = PairKey::derive(&c, &number(A)).expect("derives");
    assert_ne!(ab, ca);
}

#[test]
fn a_number_has_no_pair_key_with_itself() {
    let a = issuer(1).issue(&number(A));
    assert_eq!(PairKey::derive(&a, &number(A)), Err(Error::SelfPair));
}

#[test]
fn the_two_directions_of_a_pair_have_different_tags_and_open_only_their_own_record() {
    let issuer = issuer(1);
    let a = issuer.issue(&number(A));
    let b = issuer.issue(&number(B));
    let label = Label::new(b"alice".to_vec()).expect("short");
    let list = AllowList::seal(&a, &label, &[number(B)]).expect("seals");
    let record = list.records()[0];
    // B finds A's record for B with its own keys.
    let key = PairKey::derive(&b, &number(A)).expect("derives");
    let a_to_b = key.record_keys(&number(A)).expect("in pair");
    let b_to_a = key.record_keys(&number(B)).expect("in pair");
    assert_eq!(record.tag(), *a_to_b.tag());
    assert_ne!(a_to_b.tag(), b_to_a.tag());
    assert_eq!(a_to_b.open(record).expect("opens"), label);
    assert!(key.record_keys(&number(C)).is_err());
}

#[test]
fn identity_keys_round_trip_and_are_checked_against_the_issuer() {
    let issuer1 = issuer(1);
    let keys = issuer1.issue(&number(A));
    let bytes = keys.to_bytes();
    let parsed = IdentityKeys::from_bytes(&bytes, issuer1.public_key()).expect("parses");
    assert_eq!(parsed.number(), &number(A));
    assert_eq!(parsed.epoch(), issuer1.public_key().epoch());
    // Another issuer's public key: another epoch.
    assert!(IdentityKeys::from_bytes(&bytes, issuer(2).public_key()).is_err());
    // Keys for A relabelled as B do not verify.
    let mut relabelled = bytes.to_vec();
    relabelled[9..17].copy_from_slice(&number(B).to_u64().to_be_bytes());
    assert!(matches!(
        IdentityKeys::from_bytes(&relabelled, issuer1.public_key()),
        Err(Error::IdentityKeys(_))
    ));
    assert!(!format!("{keys:?}").contains("415"));
}

#[test]
fn identity_points_are_refused_in_keys_public_keys_and_signatures() {
    let issuer = issuer(1);
    let mut bytes = issuer.issue(&number(A)).to_bytes().to_vec();
    // The compressed identity of G1: infinity flag set, everything else zero.
    let mut inf = [0u8; 48];
    inf[0] = 0xc0;
    bytes[17..65].copy_from_slice(&inf);
    assert_eq!(
        IdentityKeys::from_bytes(&bytes, issuer.public_key()).err(),
        Some(Error::IdentityElement)
    );
    let mut pk = issuer.public_key().as_bytes().to_vec();
    pk[..48].copy_from_slice(&inf);
    assert_eq!(
        IssuerPublicKey::from_slice(&pk).err(),
        Some(Error::IdentityElement)
    );
    let mut sig = [0u8; UPLOAD_SIGNATURE_LEN];
    sig[..48].copy_from_slice(&inf);
    sig[48..].copy_from_slice(&inf);
    assert_eq!(
        UploadSignature::from_slice(&sig).err(),
        Some(Error::IdentityElement)
    );
}

#[test]
fn an_issuer_public_key_with_mismatched_halves_is_refused() {
    let mut pk = issuer(1).public_key().as_bytes().to_vec();
    pk[48..].copy_from_slice(&issuer(2).public_key().as_bytes()[48..]);
    assert_eq!(
        IssuerPublicKey::from_slice(&pk).err(),
        Some(Error::IssuerKeyMismatch)
    );
}

#[test]
fn an_upload_signature_verifies_only_for_the_signers_number_and_message() {
    let issuer = issuer(1);
    let pk = issuer.public_key();
    let a = issuer.issue(&number(A));
    let message = upload_message(pk.epoch(), b"acct-a", &number(A), 100, b"records");
    let sig = UploadSignature::sign(&a, &message, &mut rand::rng());
    let parsed = UploadSignature::from_slice(&sig.to_bytes()).expect("parses");
    assert_eq!(parsed.verify(pk, &number(A), &message), Ok(()));
    // Someone else's number, another message, another issuer: refused.
    assert_eq!(
        parsed.verify(pk, &number(B), &message),
        Err(Error::UploadSignature)
    );
    let other = upload_message(pk.epoch(), b"acct-a", &number(A), 101, b"records");
    assert_eq!(
        parsed.verify(pk, &number(A), &other),
        Err(Error::UploadSignature)
    );
    let other_account = upload_message(pk.epoch(), b"acct-c", &number(A), 100, b"records");
    assert_eq!(
        parsed.verify(pk, &number(A), &other_account),
        Err(Error::UploadSignature)
    );
    assert_eq!(
        parsed.verify(issuer_two_pk(), &number(A), &message),
        Err(Error::UploadSignature)
    );
}

fn issuer_two_pk() -> &'static IssuerPublicKey {
    use std::sync::OnceLock;
    static PK: OnceLock<IssuerPublicKey> = OnceLock::new();
    PK.get_or_init(|| *issuer(2).public_key())
}

#[test]
fn an_allow_list_skips_the_owner_and_repeats_and_comes_in_tag_order() {
    let issuer = issuer(1);
    let a = issuer.issue(&number(A));
    let label = Label::new(b"a".to_vec()).expect("short");
    let list =
        AllowList::seal(&a, &label, &[number(B), number(A), number(C), number(B)]).expect("seals");
    assert_eq!(list.len(), 2);
    assert_eq!(AllowList::decode(list.as_bytes()).expect("decodes"), list);
    let tags: Vec<_> = list.records().iter().map(RecordRef::tag).collect();
    assert!(tags.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn an_allow_list_with_a_repeated_or_unsorted_tag_is_refused() {
    let issuer = issuer(1);
    let a = issuer.issue(&number(A));
    let label = Label::new(b"a".to_vec()).expect("short");
    let list = AllowList::seal(&a, &label, &[number(B), number(C)]).expect("seals");
    let records = list.records();
    let mut doubled = records[0].as_bytes().to_vec();
    doubled.extend_from_slice(records[0].as_bytes());
    assert_eq!(
        AllowList::decode(&doubled).err(),
        Some(Error::AllowList("a tag appears twice"))
    );
    let mut reversed = records[1].as_bytes().to_vec();
    reversed.extend_from_slice(records[0].as_bytes());
    assert_eq!(
        AllowList::decode(&reversed).err(),
        Some(Error::AllowList("records are not in tag order"))
    );
}

/// `n` well-formed records with an empty label, tags ascending.
fn packed_records(n: usize) -> Vec<u8> {
    let mut packed = Vec::with_capacity(n * crate::RECORD_OVERHEAD);
    for i in 0..n {
        packed.extend_from_slice(&(i as u64).to_be_bytes()); // tag
        packed.push(0); // label length
        packed.extend_from_slice(&[0; 16]); // synthetic IV
    }
    packed
}

#[test]
fn an_allow_list_holds_at_most_max_allow_list_records() {
    assert_eq!(
        AllowList::decode(&packed_records(MAX_ALLOW_LIST))
            .expect("the maximum decodes")
            .len(),
        MAX_ALLOW_LIST
    );
    let too_many = Some(Error::AllowList("more records than an allow-list may hold"));
    assert_eq!(
        AllowList::decode(&packed_records(MAX_ALLOW_LIST + 1)).err(),
        too_many
    );
    // Sealing refuses before computing any pairing.
    let a = issuer(1).issue(&number(A));
    let finders: Vec<E164> = (0..=MAX_ALLOW_LIST as u64)
        .map(|i| E164::from_u64(4_917_000_000_000 + i).expect("valid"))
        .collect();
    let label = Label::new(b"a".to_vec()).expect("short");
    assert_eq!(AllowList::seal(&a, &label, &finders).err(), too_many);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_bytes_are_never_identity_keys(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let pk = *issuer(1).public_key();
        prop_assert!(IdentityKeys::from_bytes(&bytes, &pk).is_err());
    }

    #[test]
    fn identity_keys_with_a_flipped_bit_are_refused(bit in 0usize..(IDENTITY_KEYS_LEN_MAX * 8)) {
        let issuer = issuer(1);
        let mut bytes = issuer.issue(&number(A)).to_bytes().to_vec();
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(IdentityKeys::from_bytes(&bytes, issuer.public_key()).is_err());
    }

    #[test]
    fn issuer_public_keys_round_trip_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), ISSUER_PUBLIC_KEY_LEN..=ISSUER_PUBLIC_KEY_LEN)) {
        if let Ok(pk) = IssuerPublicKey::from_slice(&bytes) {
            prop_assert_eq!(pk.as_bytes().as_slice(), bytes.as_slice());
        }
    }

    #[test]
    fn upload_signatures_round_trip_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        if let Ok(sig) = UploadSignature::from_slice(&bytes) {
            prop_assert_eq!(&sig.to_bytes()[..], &bytes[..]);
        }
    }

    #[test]
    fn a_signature_with_a_flipped_bit_does_not_verify(bit in 0usize..(UPLOAD_SIGNATURE_LEN * 8)) {
        let issuer = issuer(1);
        let a = issuer.issue(&number(A));
        let m = upload_message(issuer.public_key().epoch(), b"x", &number(A), 1, b"");
        let mut bytes = UploadSignature::sign(&a, &m, &mut rand::rng()).to_bytes();
        bytes[bit / 8] ^= 1 << (bit % 8);
        if let Ok(sig) = UploadSignature::from_slice(&bytes) {
            prop_assert!(sig.verify(issuer.public_key(), &number(A), &m).is_err());
        }
    }

    #[test]
    fn allow_list_decoding_round_trips_or_refuses(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(list) = AllowList::decode(&bytes) {
            prop_assert_eq!(list.as_bytes(), bytes.as_slice());
            let tags: Vec<_> = list.records().iter().map(RecordRef::tag).collect();
            prop_assert!(tags.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
