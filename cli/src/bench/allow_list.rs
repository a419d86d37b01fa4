//! `cds bench --allow-list N`: contacts-only mode against the server under
//! bench. A synthetic contacts-only user (registered and switched to
//! contacts-only through Admin) uploads an allow-list of N numbers with the
//! real client; one of the allowed numbers then discovers an address book
//! of N contacts holding the owner, with its identity keys, and must find
//! the owner's label. The owner is unregistered afterwards.
//!
//! Measured: the owner's sealing time (one pairing per allowed number), the
//! upload's size and round trip (the server's signature check and store
//! write), the finder's pairing CPU per contact, and the finder's bytes.

use std::time::Instant;

use anyhow::{Context, bail};
use cds_client::{BucketMode, Client, Contact, Region};
use cds_core::contacts_only::{IssuerSecret, PairKey};
use cds_core::{E164, Label};
use cds_proto::v1::{
    Discoverability, RegisterRequest, SetDiscoverabilityRequest, UnregisterRequest, User,
};

use super::sample::AllowListFigures;
use super::workload::{Target, address_book};
use crate::admin::{Admin, SendAdminToken};

/// The label the synthetic owner's contacts see (16 bytes, a typical
/// account id).
const OWNER_LABEL: &[u8; 16] = b"bench-allow-list";

/// Measure contacts-only mode with `allowed` numbers on `target`, whose
/// server trusts `issuer`'s public key. Needs the Admin service.
pub async fn measure(
    target: &Target,
    admin_token: SendAdminToken,
    issuer: &IssuerSecret,
    allowed: usize,
    bucket_mode: BucketMode,
) -> anyhow::Result<AllowListFigures> {
    if allowed == 0 {
        bail!("--allow-list must be at least 1 (the finder is one of the allowed numbers)");
    }
    let Some(admin_url) = target.admin.as_deref() else {
        bail!(
            "--allow-list needs --admin URL: the benchmark registers a synthetic contacts-only user"
        );
    };
    let mut admin = crate::admin::connect(admin_url, &target.admin_channel, admin_token).await?;
    // A random number of the range address books draw from (valid in the
    // numbering plan, so the finder's client does not drop it as invalid;
    // one in 10^9 for each number of a book, so no collision matters).
    let owner = address_book(1, &None)
        .pop()
        .context("no synthetic number for the contacts-only user")?;
    admin
        .register(RegisterRequest {
            user: Some(User {
                e164: owner.as_str().to_owned(),
                label: OWNER_LABEL.to_vec().into(),
                discoverable: false,
            }),
        })
        .await
        .context("cannot register the synthetic contacts-only user")?;
    let measured = async {
        admin
            .set_discoverability(SetDiscoverabilityRequest {
                e164: owner.as_str().to_owned(),
                discoverability: Discoverability::Contacts as i32,
            })
            .await
            .context("cannot switch the synthetic user to contacts-only")?;
        run(target, issuer, &owner, allowed, bucket_mode).await
    }
    .await;
    let removed = remove(&mut admin, &owner).await;
    let figures = measured?;
    removed?;
    Ok(figures)
}

async fn remove(admin: &mut Admin, owner: &E164) -> anyhow::Result<()> {
    admin
        .unregister(UnregisterRequest {
            e164: owner.as_str().to_owned(),
        })
        .await
        .context("cannot unregister the synthetic contacts-only user")?;
    Ok(())
}

/// A client of the benchmark's account holding `keys`.
async fn client(
    target: &Target,
    issuer: &IssuerSecret,
    number: &E164,
    mode: BucketMode,
) -> anyhow::Result<Client> {
    target
        .client_builder()
        .identity_keys(issuer.issue(number))
        .bucket_mode(mode)
        .connect()
        .await
        .context("cannot reach the discovery service")
}

async fn run(
    target: &Target,
    issuer: &IssuerSecret,
    owner: &E164,
    allowed: usize,
    bucket_mode: BucketMode,
) -> anyhow::Result<AllowListFigures> {
    // The owner cannot allow itself: draw again in the unlikely case.
    let list = loop {
        let list = address_book(allowed, &None);
        if !list.contains(owner) {
            break list;
        }
    };
    let entries: Vec<&str> = list.iter().map(E164::as_str).collect();
    // Every entry is in E.164 form: the region is never used.
    let region = Region::parse("DE")?;
    let label = Label::new(OWNER_LABEL.to_vec())?;
    let upload = client(target, issuer, owner, BucketMode::All)
        .await?
        .upload_allow_list(&entries, region, &label)
        .await
        .context("the allow-list upload failed")?;

    // A finder's lookup work for a book of the same size, alone.
    let finder = &list[0];
    let finder_keys = issuer.issue(finder);
    let cpu = cpu_time::ThreadTime::now();
    for contact in std::iter::once(owner).chain(&list[1..]) {
        let keys = PairKey::derive(&finder_keys, contact)?;
        std::hint::black_box(keys.record_keys(contact)?);
    }
    let lookup_pairing_cpu = cpu.elapsed();

    // The finder's real discovery: the owner among its other contacts.
    let book: Vec<&str> = std::iter::once(owner)
        .chain(&list[1..])
        .map(E164::as_str)
        .collect();
    let mut finder_client = client(target, issuer, finder, bucket_mode).await?;
    let started = Instant::now();
    let found = finder_client
        .discover(&book, region)
        .await
        .context("the finder's discovery failed")?;
    let lookup_wall = started.elapsed();
    let Some(Contact::Registered { label: seen, .. }) = found.first() else {
        bail!(
            "the allowed finder did not find the contacts-only user: the server does not serve its allow-list"
        );
    };
    if seen.as_bytes() != OWNER_LABEL {
        bail!("the finder found the contacts-only user with another label than it uploaded");
    }
    let report = finder_client.last_report();
    Ok(AllowListFigures {
        allowed: upload.allowed,
        stored: upload.stored,
        label_len: OWNER_LABEL.len(),
        upload_bytes: upload.bytes_sent,
        sealing: upload.sealing,
        upload_round_trip: upload.round_trip,
        lookup_pairing_cpu,
        lookup_contacts: book.len(),
        lookup_pairings: report.pairings,
        lookup_bytes_sent: report.bytes_sent,
        lookup_bytes_received: report.bytes_received,
        lookup_wall,
    })
}
