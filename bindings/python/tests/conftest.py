"""A real `cds serve` on 127.0.0.1 for the binding tests.

The server is the debug `cds` binary (CDS_BIN, or target/debug/cds of this
checkout), in development mode (it keeps the credential issuer key in its
data directory), on free loopback ports, in a temporary data directory,
with a small discovery budget so a quota refusal is easy to reach, and a
contacts issuer key (`cds admin contacts-issuer`, as the messenger backend
creates it) so contacts-only users can upload allow-lists. Credentials and
identity keys are minted as the README does, with `cds admin token` and
`cds admin contacts-keys`.
"""

import asyncio
import os
import pathlib
import socket
import subprocess
import tempfile
import time

import pytest

import cds_client

REPO = pathlib.Path(__file__).resolve().parents[3]
# Each account may evaluate this many new numbers, and gets one back per hour.
QUOTA_BURST = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running `cds serve --dev` and the `cds admin` commands against it."""

    def __init__(self, binary: pathlib.Path, data_dir: pathlib.Path, quota_burst: int = QUOTA_BURST):
        self.binary = binary
        self.data_dir = data_dir
        # The backend's contacts issuer secret stays outside the data
        # directory: the cds server gets only its public key.
        self.contacts_issuer = data_dir.parent / "contacts-issuer"
        self.contacts_issuer_public_key = bytes.fromhex(
            self.run("admin", "contacts-issuer", "--out", str(self.contacts_issuer))
        )
        self.discovery_port = free_port()
        self.admin_port = free_port()
        self.url = f"http://127.0.0.1:{self.discovery_port}"
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        self.log = open(data_dir.parent / "cds-serve.log", "wb")
        self.process = subprocess.Popen(
            [
                str(binary), "serve", "--dev",
                "--data-dir", str(data_dir),
                "--listen", f"127.0.0.1:{self.discovery_port}",
                "--admin-listen", f"127.0.0.1:{self.admin_port}",
                "--bucket-bits", "4",
                "--quota-burst", str(quota_burst),
                "--quota-refill-per-hour", "1",
                "--contacts-issuer-public-key", self.contacts_issuer_public_key.hex(),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def run(self, *args: str) -> str:
        """Run `cds ARGS`; its standard output."""
        done = subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def admin(self, *args: str) -> str:
        """Run `cds admin ARGS` against this server; its standard output."""
        return self.run("admin", "--admin", self.admin_url, *args)

    def identity_keys(self, e164: str) -> bytes:
        """The contacts-only identity keys the backend issues for `e164`
        (the `keys` line of the file `cds admin contacts-keys` writes)."""
        out = self.data_dir.parent / f"identity-{e164.lstrip('+')}"
        if not out.exists():
            self.run("admin", "contacts-keys", e164,
                     "--issuer", str(self.contacts_issuer), "--out", str(out))
        lines = out.read_text().splitlines()
        assert lines[0] == "cds-identity-keys v1", lines[0]
        fields = dict(line.split(" ", 1) for line in lines[1:])
        assert bytes.fromhex(fields["issuer"]) == self.contacts_issuer_public_key
        return bytes.fromhex(fields["keys"])

    def token(self, account: str) -> str:
        """A credential for `account`, as the messenger backend issues it."""
        return self.admin(
            "token", "--account", account,
            "--issuer-key", str(self.data_dir / "issuer.key"),
            "--valid-for", "1h",
        )

    def import_users(self, rows: list) -> None:
        csv = self.data_dir.parent / "users.csv"
        csv.write_text(
            "e164,label,discoverable\n"
            + "".join(f"{e164},{label},{str(on).lower()}\n" for e164, label, on in rows)
        )
        self.admin("import", str(csv))

    def wait_until_serving(self, deadline_s: float = 120.0) -> None:
        """Until GetConfig answers (the server builds its table first)."""
        end = time.monotonic() + deadline_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    "cds serve exited: "
                    + (self.data_dir.parent / "cds-serve.log").read_text()
                )
            try:
                asyncio.run(cds_client.connect(cds_client.ClientOptions(url=self.url)))
                return
            except cds_client.DiscoveryError.Connect:
                pass
            except cds_client.DiscoveryError.Unavailable:
                pass
            if time.monotonic() > end:
                raise TimeoutError("cds serve did not start serving in time")
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture(scope="session")
def server():
    binary = pathlib.Path(os.environ.get("CDS_BIN", REPO / "target" / "debug" / "cds"))
    if not binary.exists():
        pytest.fail(f"{binary} does not exist: build it with `cargo build -p cds-cli`")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = pathlib.Path(tmp) / "data"
        s = Server(binary, data_dir)
        try:
            s.wait_until_serving()
            s.import_users([
                ("+12015550123", "alice", True),
                ("+4915123456789", "bob", True),
                ("+447400123456", "carol", False),
                ("+12015550177", "dave", True),
            ])
            yield s
        finally:
            s.stop()
