"""Sync mode (`BucketMode.SYNC`) through the Python package, against a real
`cds serve` on 127.0.0.1 (conftest.py): the client keeps a copy of every
record in its cache bytes and brings it up to date by delta."""

import asyncio

import pytest

import cds_client
from cds_client import BucketMode, ClientOptions, Contact, DiscoveryError

# Numbers only this module registers, changes or looks up.
ERIN = "+12015550141"
FRANK = "+12015550142"
GRACE = "+12015550143"
NOBODY = "+12015550144"


def connect(server, account, **options):
    return asyncio.run(cds_client.connect(ClientOptions(
        url=server.url, credential=server.token(account),
        bucket_mode=BucketMode.SYNC, **options)))


def discover(client, book):
    return asyncio.run(client.discover(book, "US"))


@pytest.fixture(scope="module")
def synced(server):
    server.import_users([(ERIN, "erin", True), (FRANK, "frank", True)])
    return server


def test_a_sync_mode_client_downloads_the_table_and_finds_a_registered_contact(synced):
    client = connect(synced, "sync-first")
    found = discover(client, ["(201) 555-0141", NOBODY, "call me"])
    assert found[0] == Contact.REGISTERED(number=ERIN, label=b"erin")
    assert found[1] == Contact.NOT_REGISTERED(number=NOBODY)
    assert found[2].is_invalid()
    report = client.last_report()
    assert report.full_download
    assert report.sync_requests >= 1
    # The whole table came by SyncRecords (every user of the session, a
    # record of at least 25 bytes each); Discover carried only the two
    # contacts' elements, no records.
    assert report.sync_bytes_received >= 25 * 4
    assert report.sync_bytes_sent > 0
    assert (report.evaluated, report.requests) == (2, 1)


def test_a_client_from_the_saved_cache_resyncs_by_a_tiny_delta_and_sees_admin_changes(synced):
    book = [ERIN, FRANK, GRACE]
    before = [
        Contact.REGISTERED(number=ERIN, label=b"erin"),
        Contact.REGISTERED(number=FRANK, label=b"frank"),
        Contact.NOT_REGISTERED(number=GRACE),
    ]
    first = connect(synced, "sync-cache")
    assert discover(first, book) == before
    assert first.last_report().full_download

    # The app restarted: a new client from the stored bytes (which carry the
    # copy of the records and its version), nothing changed since.
    again = connect(synced, "sync-cache", cache=first.cache())
    assert discover(again, book) == before
    report = again.last_report()
    assert not report.full_download
    assert report.sync_requests == 1
    # One delta request: epoch, version and set digest, nothing in
    # proportion to the table; no Discover at all (every contact cached).
    assert report.sync_bytes_received <= 40, report
    assert report.sync_bytes_sent <= 24, report
    assert (report.evaluated, report.requests, report.bytes_sent, report.bytes_received) == (0, 0, 0, 0)

    # The backend hides Erin, removes Frank and registers Grace.
    synced.admin("set-discoverable", ERIN, "false")
    synced.admin("unregister", FRANK)
    synced.admin("register", GRACE, "--label", "grace")
    third = connect(synced, "sync-cache", cache=again.cache())
    assert discover(third, book) == [
        Contact.NOT_REGISTERED(number=ERIN),
        Contact.NOT_REGISTERED(number=FRANK),
        Contact.REGISTERED(number=GRACE, label=b"grace"),
    ]
    report = third.last_report()
    assert not report.full_download, "a delta, not a new download"
    assert report.sync_requests == 1
    assert (report.evaluated, report.requests) == (0, 0)


def test_contacts_only_with_another_bucket_mode_is_refused(server):
    with pytest.raises(DiscoveryError.InvalidInput):
        connect(server, "sync-both", contacts_only=True)
    # The older flag alone, and bucket_mode alone, are accepted.
    for options in ({"contacts_only": True}, {"bucket_mode": BucketMode.CONTACTS_ONLY},
                    {"bucket_mode": BucketMode.ALL}):
        asyncio.run(cds_client.connect(ClientOptions(url=server.url, **options)))
