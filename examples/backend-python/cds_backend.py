"""A messenger backend's side of cds, written from proto/cds/v1/cds.proto and
docs/protocol.md alone: register users on sign-up, import them in bulk, turn
discovery on and off, unregister on account deletion, follow the registry's
change log and read the server's counts, over the Admin API.

The gRPC stubs are generated from the proto at run time (generate_stubs),
into a build directory, never checked in.
"""

from __future__ import annotations

import importlib
import pathlib
import sys
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

import grpc

HERE = pathlib.Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent / "proto"
PROTO_FILE = "cds/v1/cds.proto"

# Rows per Import message: well under the server's 16 MiB message limit
# (a row is at most about 100 bytes).
IMPORT_CHUNK_ROWS = 10_000


def generate_stubs(build_dir: pathlib.Path):
    """Compile cds.proto with grpcio-tools into build_dir and import it.

    Returns (cds_pb2, cds_pb2_grpc).
    """
    from grpc_tools import protoc  # only needed here

    build_dir.mkdir(parents=True, exist_ok=True)
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            f"--python_out={build_dir}",
            f"--grpc_python_out={build_dir}",
            str(PROTO_ROOT / PROTO_FILE),
        ]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed on {PROTO_FILE} (exit {code})")
    if str(build_dir) not in sys.path:
        sys.path.insert(0, str(build_dir))
    return (
        importlib.import_module("cds.v1.cds_pb2"),
        importlib.import_module("cds.v1.cds_pb2_grpc"),
    )


@dataclass
class Tls:
    """TLS to the Admin listener: the CA that signed the server's
    certificate, and (for a server with admin_client_ca) a client
    certificate and key."""

    ca_pem: bytes
    client_cert_pem: Optional[bytes] = None
    client_key_pem: Optional[bytes] = None


@dataclass
class ImportSummary:
    received: int
    created: int
    updated: int
    rejected: int
    # (row number, reason): the first rejected rows; never their content.
    errors: list


class CdsAdmin:
    """The Admin API, as a messenger backend uses it."""

    def __init__(self, pb2, pb2_grpc, target: str, token: Optional[str] = None,
                 tls: Optional[Tls] = None):
        self.pb = pb2
        if tls is None:
            self.channel = grpc.insecure_channel(target)
        else:
            creds = grpc.ssl_channel_credentials(
                root_certificates=tls.ca_pem,
                private_key=tls.client_key_pem,
                certificate_chain=tls.client_cert_pem,
            )
            self.channel = grpc.secure_channel(target, creds)
        self.stub = pb2_grpc.AdminStub(self.channel)
        # protocol.md §8: `authorization: Bearer <token>` on every call.
        self.metadata = [("authorization", f"Bearer {token}")] if token else []

    def close(self):
        self.channel.close()

    def _user(self, e164: str, label: bytes, discoverable: bool):
        return self.pb.User(e164=e164, label=label, discoverable=discoverable)

    def sign_up(self, e164: str, label: bytes, discoverable: bool = True) -> bool:
        """Register a new account (or update it). True if it was new."""
        response = self.stub.Register(
            self.pb.RegisterRequest(user=self._user(e164, label, discoverable)),
            metadata=self.metadata,
        )
        return response.created

    def set_discoverable(self, e164: str, discoverable: bool) -> None:
        """The user's privacy setting "find me by my number"."""
        self.stub.SetDiscoverable(
            self.pb.SetDiscoverableRequest(e164=e164, discoverable=discoverable),
            metadata=self.metadata,
        )

    def delete_account(self, e164: str) -> bool:
        """Unregister on account deletion. True if it was registered."""
        response = self.stub.Unregister(
            self.pb.UnregisterRequest(e164=e164), metadata=self.metadata
        )
        return response.existed

    def bulk_import(self, rows: Iterable[tuple], chunk_rows: int = IMPORT_CHUNK_ROWS) -> ImportSummary:
        """Import (e164, label, discoverable) rows in one streaming call.

        Each chunk is applied when it arrives; if the call fails, the
        chunks before stay applied and resending everything is safe (rows
        are upserts).
        """

        def chunks() -> Iterator:
            batch = []
            for e164, label, discoverable in rows:
                batch.append(self._user(e164, label, discoverable))
                if len(batch) == chunk_rows:
                    yield self.pb.ImportRequest(users=batch)
                    batch = []
            if batch:
                yield self.pb.ImportRequest(users=batch)

        r = self.stub.Import(chunks(), metadata=self.metadata)
        return ImportSummary(
            received=r.received,
            created=r.created,
            updated=r.updated,
            rejected=r.rejected,
            errors=[(e.row, e.reason) for e in r.errors],
        )

    def changes_after(self, after: int = 0) -> Iterator[tuple]:
        """Follow the change log from `after` until it is drained, yielding
        (seq, kind, e164, label, discoverable); kind is "upserted" or
        "removed"."""
        while True:
            page = self.stub.ListChanges(
                self.pb.ListChangesRequest(after=after), metadata=self.metadata
            )
            if after + 1 < page.oldest_retained:
                raise RuntimeError(
                    f"changes {after + 1}..{page.oldest_retained - 1} were pruned before they were read"
                )
            if not page.changes:
                return
            for c in page.changes:
                after = c.seq
                if c.WhichOneof("change") == "upserted":
                    u = c.upserted
                    yield (c.seq, "upserted", u.e164, u.label, u.discoverable)
                else:
                    yield (c.seq, "removed", c.removed, b"", False)

    def stats(self):
        return self.stub.Stats(self.pb.StatsRequest(), metadata=self.metadata)


def main(argv: list) -> int:
    """python cds_backend.py ADMIN_TARGET [TOKEN]: print the server's counts."""
    import tempfile

    if len(argv) < 2:
        print("usage: python cds_backend.py 127.0.0.1:50052 [ADMIN_TOKEN]", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as build:
        pb2, pb2_grpc = generate_stubs(pathlib.Path(build))
        admin = CdsAdmin(pb2, pb2_grpc, argv[1], token=argv[2] if len(argv) > 2 else None)
        s = admin.stats()
        print(f"registered={s.registered} discoverable={s.discoverable} epoch={s.epoch}")
        admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
