"""The backend example against a real `cds serve`: every Admin operation a
messenger backend needs, with an admin token and with mutual TLS, and the
statuses a client written from the proto gets for mistakes."""

import json
import os
import time

import grpc
import pytest

import cds_backend

ALICE = "+12015550123"
BOB = "+12015550124"


def connected(stubs, server, **kw):
    pb2, pb2_grpc = stubs
    admin = cds_backend.CdsAdmin(pb2, pb2_grpc, kw.pop("target", server.admin), **kw)
    server.wait_serving(admin.channel)
    # The table is built once Stats answers (UNAVAILABLE while starting).
    deadline = time.monotonic() + 60
    while True:
        try:
            admin.stats()
            return admin
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_backend_lifecycle_sign_up_import_opt_out_delete_and_change_log(stubs, start_server):
    server = start_server()
    admin = connected(stubs, server)

    assert admin.sign_up(ALICE, b"acct-alice") is True
    assert admin.sign_up(ALICE, b"acct-alice-2") is False  # an update

    rows = [(f"+491512{i:07d}", f"acct-{i}".encode(), i % 2 == 0) for i in range(2500)]
    rows.append(("not a number", b"x", True))
    summary = admin.bulk_import(rows, chunk_rows=1000)
    assert (summary.received, summary.created, summary.rejected) == (2501, 2500, 1)
    assert summary.errors[0][0] == 2500
    assert "not a number" not in summary.errors[0][1]

    stats = admin.stats()
    assert stats.registered == 2501
    assert stats.discoverable == 1 + 1250

    admin.set_discoverable(ALICE, False)
    assert admin.stats().discoverable == 1250
    with pytest.raises(grpc.RpcError) as e:
        admin.set_discoverable(BOB, True)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND

    assert admin.delete_account(ALICE) is True
    assert admin.delete_account(ALICE) is False
    assert admin.stats().registered == 2500

    changes = list(admin.changes_after(0))
    assert changes[0][1:4] == ("upserted", ALICE, b"acct-alice")
    assert changes[-1][1:3] == ("removed", ALICE)
    assert [c[0] for c in changes] == sorted(c[0] for c in changes)
    # Following from the last seq returns nothing new.
    assert list(admin.changes_after(changes[-1][0])) == []
    admin.close()


def test_bad_input_is_invalid_argument_and_never_internal(stubs, start_server):
    server = start_server()
    admin = connected(stubs, server)
    with pytest.raises(grpc.RpcError) as e:
        admin.sign_up("12345", b"x")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # Bytes that are not protobuf (invalid UTF-8 in e164), sent raw.
    unregister = admin.channel.unary_unary(
        "/cds.v1.Admin/Unregister",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    with pytest.raises(grpc.RpcError) as e:
        unregister(bytes([0x0A, 3, ord("+"), 0xFF, ord("1")]))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid protobuf message" in e.value.details()
    admin.close()


def import_log_lines(server):
    """The server's JSON log lines about imports, as their fields."""
    found = []
    for line in server.log().splitlines():
        try:
            fields = json.loads(line).get("fields", {})
        except ValueError:
            continue
        if "import" in str(fields.get("message", "")):
            found.append(fields)
    return found


def test_an_import_that_fails_midway_is_logged_with_counts_only(stubs, start_server):
    server = start_server("--log-format", "json")
    admin = connected(stubs, server)
    pb = admin.pb
    raw_import = admin.channel.stream_unary(
        "/cds.v1.Admin/Import",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    good = pb.ImportRequest(users=[pb.User(e164=ALICE, label=b"a", discoverable=True)])
    with pytest.raises(grpc.RpcError) as e:
        raw_import(iter([good.SerializeToString(), b"\xff" * 11]))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert admin.stats().registered == 1
    deadline = time.monotonic() + 30
    while not import_log_lines(server):
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    [fields] = import_log_lines(server)
    assert fields["message"].startswith("import failed midway"), fields
    assert (fields["received"], fields["created"]) == (1, 1), fields
    assert "2015550123" not in server.log()
    admin.close()


def test_with_an_admin_token_calls_without_it_are_unauthenticated(stubs, start_server, tmp_path):
    token = "t" * 40 + "0123456789abcdef"
    token_file = tmp_path / "admin.token"
    token_file.write_text(token + "\n")
    os.chmod(token_file, 0o600)
    server = start_server("--admin-token-file", str(token_file))
    admin = connected(stubs, server, token=token)
    assert admin.sign_up(ALICE, b"a") is True
    pb2, pb2_grpc = stubs
    anonymous = cds_backend.CdsAdmin(pb2, pb2_grpc, server.admin)
    wrong = cds_backend.CdsAdmin(pb2, pb2_grpc, server.admin, token="w" * 40)
    for client in (anonymous, wrong):
        with pytest.raises(grpc.RpcError) as e:
            client.stats()
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        client.close()
    assert admin.stats().registered == 1
    admin.close()


def test_over_mutual_tls_only_a_client_certificate_of_the_ca_gets_in(stubs, start_server, pki):
    server = start_server(
        "--admin-tls-cert", str(pki / "server.pem"),
        "--admin-tls-key", str(pki / "server.key"),
        "--admin-client-ca", str(pki / "ca.pem"),
    )
    target = "localhost:" + server.admin.split(":")[1]
    tls = cds_backend.Tls(
        ca_pem=(pki / "ca.pem").read_bytes(),
        client_cert_pem=(pki / "client.pem").read_bytes(),
        client_key_pem=(pki / "client.key").read_bytes(),
    )
    admin = connected(stubs, server, target=target, tls=tls)
    assert admin.sign_up(ALICE, b"a") is True
    assert admin.bulk_import([(BOB, b"b", True)]).created == 1
    assert admin.stats().registered == 2
    admin.close()

    pb2, pb2_grpc = stubs
    no_cert = cds_backend.CdsAdmin(pb2, pb2_grpc, target, tls=cds_backend.Tls(ca_pem=tls.ca_pem))
    with pytest.raises(grpc.RpcError) as e:
        no_cert.stats()
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    no_cert.close()


def test_reflection_v1alpha_lists_only_the_listener_services(stubs, start_server):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    server = start_server()
    admin = connected(stubs, server)
    for target, served in ((server.admin, "cds.v1.Admin"), (server.discovery, "cds.v1.Discovery")):
        with grpc.insecure_channel(target) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            response = next(stub.ServerReflectionInfo(iter([request])))
            names = sorted(s.name for s in response.list_services_response.service)
            assert served in names, names
            other = "cds.v1.Discovery" if served == "cds.v1.Admin" else "cds.v1.Admin"
            assert other not in names, names
            assert "grpc.health.v1.Health" in names
    admin.close()


def test_oversized_metadata_is_refused_and_not_retried(stubs, start_server):
    server = start_server()
    admin = connected(stubs, server)
    with pytest.raises(grpc.RpcError) as e:
        admin.stub.Stats(admin.pb.StatsRequest(), metadata=[("x-padding", "p" * 17000)])
    # docs/protocol.md §9: the HTTP/2 layer answers 431 before cds sees the
    # call; grpcio reports it as UNKNOWN.
    assert e.value.code() == grpc.StatusCode.UNKNOWN
    assert "431" in e.value.details()
    assert admin.stats().registered == 0
    admin.close()
