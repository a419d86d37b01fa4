"""Contacts-only discoverability through the Python package, against a real
`cds serve` on 127.0.0.1 with a contacts issuer key (conftest.py)."""

import asyncio

import pytest

import cds_client
from cds_client import ClientOptions, Contact, DiscoveryError

# A is contacts-only; B and C are users with identity keys of their own.
A = "+12015550161"
B = "+4915123450162"
C = "+442079460163"


def connect(server, account, number=None, **options):
    """A client of `account`, holding the identity keys of `number`."""
    if number is not None:
        options["identity_keys"] = server.identity_keys(number)
        options["contacts_issuer_public_key"] = server.contacts_issuer_public_key
    return asyncio.run(cds_client.connect(
        ClientOptions(url=server.url, credential=server.token(account), **options)
    ))


def finds_a(server, account, number, **options):
    client = connect(server, account, number, **options)
    found = asyncio.run(client.discover([A], "US"))
    return found[0], client.last_report()


def upload_for_a(server, allowed):
    a = connect(server, "cts-a", A)
    return asyncio.run(a.upload_allow_list(allowed, "US", b"alice-cts"))


@pytest.fixture(scope="module")
def contacts_only_a(server):
    server.import_users([(A, "alice", False)])
    server.admin("set-discoverability", A, "contacts")
    return server


def test_b_in_as_list_finds_a_with_as_label_and_c_does_not(contacts_only_a):
    server = contacts_only_a
    # B written as people write numbers; an invalid entry is left out.
    assert upload_for_a(server, ["+49 1512 3450162", "not a number"]) == 1
    for contacts_only in (False, True):
        found, report = finds_a(server, "cts-b", B, contacts_only=contacts_only)
        assert found == Contact.REGISTERED(number=A, label=b"alice-cts")
        assert report.found_by_allow_list == 1 and report.pairings == 1
        # C is not listed: its own identity keys find nothing.
        found, report = finds_a(server, "cts-c", C, contacts_only=contacts_only)
        assert found == Contact.NOT_REGISTERED(number=A)
        assert report.found_by_allow_list == 0
    # Nor does anyone without identity keys: A has no normal record.
    found, _ = finds_a(server, "cts-plain", None)
    assert found == Contact.NOT_REGISTERED(number=A)


def test_a_removing_b_hides_a_at_bs_next_discover(contacts_only_a):
    server = contacts_only_a
    assert upload_for_a(server, [B, C]) == 2
    b = connect(server, "cts-b2", B)
    assert asyncio.run(b.discover([A], "US"))[0] == Contact.REGISTERED(number=A, label=b"alice-cts")
    assert upload_for_a(server, [C]) == 1
    # The same client, the next sync: B is no longer allowed.
    assert asyncio.run(b.discover([A], "US"))[0] == Contact.NOT_REGISTERED(number=A)
    found, _ = finds_a(server, "cts-c2", C)
    assert found == Contact.REGISTERED(number=A, label=b"alice-cts")


def test_bad_identity_keys_are_a_typed_error_without_the_number(server):
    good = server.identity_keys(B)
    issuer = server.contacts_issuer_public_key
    digits = B.lstrip("+")
    tampered = bytearray(good)
    tampered[-1] ^= 1  # a point that does not decode or does not verify
    wrong_number = bytearray(good)
    wrong_number[16] ^= 1  # keys moved to another number do not verify
    for keys in (b"", good[:-1], bytes(tampered), bytes(wrong_number), b"\x02" + good[1:]):
        with pytest.raises(DiscoveryError.InvalidInput) as refused:
            connect(server, "cts-bad", identity_keys=keys, contacts_issuer_public_key=issuer)
        assert digits not in str(refused.value)
    # Keys without the issuer key, and a bad issuer key, are refused too.
    with pytest.raises(DiscoveryError.InvalidInput):
        connect(server, "cts-bad", identity_keys=good)
    with pytest.raises(DiscoveryError.InvalidInput):
        connect(server, "cts-bad", identity_keys=good, contacts_issuer_public_key=issuer[:-1])


def test_an_upload_without_identity_keys_or_in_another_mode_is_refused(contacts_only_a):
    server = contacts_only_a
    plain = connect(server, "cts-nokeys")
    with pytest.raises(DiscoveryError.InvalidInput):
        asyncio.run(plain.upload_allow_list([B], "US", b"x"))
    # C is not contacts-only: the server refuses C's list.
    c = connect(server, "cts-c3", C)
    with pytest.raises(DiscoveryError.Rejected) as refused:
        asyncio.run(c.upload_allow_list([B], "US", b"x"))
    assert refused.value.code == "FAILED_PRECONDITION"
    assert B.lstrip("+") not in str(refused.value)
