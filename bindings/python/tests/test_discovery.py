"""The Python package against a real `cds serve` on 127.0.0.1 (conftest.py)."""

import asyncio
import datetime

import pytest

import cds_client
from cds_client import ClientOptions, Contact, DiscoveryError, InvalidReason, QuotaLimit

from conftest import QUOTA_BURST

# The ristretto255 generator: a valid public key that is not the server's.
NOT_THE_SERVER_KEY = bytes.fromhex(
    "e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76"
)


def connect(server, account=None, **options):
    if account is not None:
        options["credential"] = server.token(account)
    return asyncio.run(cds_client.connect(ClientOptions(url=server.url, **options)))


def discover(client, book, region="US"):
    return asyncio.run(client.discover(book, region))


def test_discovery_reports_labels_unregistered_numbers_and_invalid_entries(server):
    client = connect(server, "discovery")
    found = discover(client, ["(201) 555-0123", "+49 1512 3456789", "(201) 555-0100", "call me", ""])
    assert found[0] == Contact.REGISTERED(number="+12015550123", label=b"alice")
    assert found[1] == Contact.REGISTERED(number="+4915123456789", label=b"bob")
    assert found[2] == Contact.NOT_REGISTERED(number="+12015550100")
    assert found[3] == Contact.INVALID(reason=InvalidReason.NOT_A_NUMBER)
    assert found[4] == Contact.INVALID(reason=InvalidReason.EMPTY)
    report = client.last_report()
    assert (report.contacts, report.evaluated, report.cached) == (3, 3, 0)


def test_a_hidden_user_is_not_found_and_an_opt_out_is_seen_on_the_next_call(server):
    client = connect(server, "opt-out")
    book = ["+44 7400 123456", "+1 201 555 0177"]
    assert discover(client, book) == [
        Contact.NOT_REGISTERED(number="+447400123456"),  # carol is hidden
        Contact.REGISTERED(number="+12015550177", label=b"dave"),
    ]
    server.admin("set-discoverable", "+12015550177", "false")
    assert discover(client, book)[1] == Contact.NOT_REGISTERED(number="+12015550177")
    assert client.last_report().evaluated == 0  # the same client: cached, free


def test_a_spent_budget_is_refused_with_its_retry_after_and_charges_nothing(server):
    client = connect(server, "quota")
    first = [f"+1201555{1000 + i}" for i in range(QUOTA_BURST - 2)]
    discover(client, first)
    more = [f"+1201555{2000 + i}" for i in range(3)]  # 3 new numbers, 2 left
    with pytest.raises(DiscoveryError.QuotaExceeded) as refused:
        discover(client, first + more)
    error = refused.value
    assert error.limit == QuotaLimit.ACCOUNT_BUDGET
    assert isinstance(error.retry_after, datetime.timedelta)
    # One evaluation back per hour: the missing one comes within the hour.
    assert datetime.timedelta(0) < error.retry_after <= datetime.timedelta(hours=1)
    for number in more:
        assert number[1:] not in str(error)
    # The refusal charged nothing: the 2 left still fit.
    assert len(discover(client, first + more[:2])) == QUOTA_BURST


def test_a_wrong_pinned_key_is_refused_and_the_right_one_or_a_profile_accepted(server):
    with pytest.raises(DiscoveryError.PublicKeyMismatch):
        connect(server, "pinned", pinned_public_key=NOT_THE_SERVER_KEY)
    key = connect(server).public_key()
    assert len(key) == 32
    pinned = connect(server, "pinned", pinned_public_key=key)
    assert discover(pinned, ["+12015550123"])[0].is_registered()
    profile = server.admin("profile")
    assert profile.startswith("cds-profile-v1:")
    assert connect(server, "pinned", profile=profile).public_key() == key
    with pytest.raises(DiscoveryError.InvalidInput):
        connect(server, pinned_public_key=b"\x01" * 31)


def test_a_stored_cache_makes_known_contacts_free(server):
    book = [f"+1201555{3000 + i}" for i in range(QUOTA_BURST - 1)] + ["+12015550123"]
    first = connect(server, "cache")
    discover(first, book)  # spends the whole budget
    saved = first.cache()
    assert isinstance(saved, bytes) and first.cached_contacts() == QUOTA_BURST
    # A new client (the app restarted) with the stored bytes: nothing to
    # evaluate, so the spent budget does not matter.
    again = connect(server, "cache", cache=saved)
    found = discover(again, book)
    assert found[-1] == Contact.REGISTERED(number="+12015550123", label=b"alice")
    report = again.last_report()
    assert (report.evaluated, report.cached) == (0, QUOTA_BURST)
    # Without the cache the same book is refused: the budget is spent.
    with pytest.raises(DiscoveryError.QuotaExceeded):
        discover(connect(server, "cache"), book)
    with pytest.raises(DiscoveryError.InvalidInput):
        connect(server, "cache", cache=b"not a cache")


def test_a_missing_credential_and_a_bad_region_are_typed_errors(server):
    with pytest.raises(DiscoveryError.Unauthenticated):
        discover(connect(server), ["+12015550123"])
    client = connect(server, "errors")
    with pytest.raises(DiscoveryError.InvalidInput) as bad_region:
        discover(client, ["+12015550123"], region="XX")
    assert "12015550123" not in str(bad_region.value)
    with pytest.raises(DiscoveryError.InvalidInput):
        asyncio.run(cds_client.connect(ClientOptions(url="http://192.0.2.1:50051")))
