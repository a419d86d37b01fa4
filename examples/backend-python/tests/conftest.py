"""Start a real `cds serve` (the binary in $CDS_BIN) on 127.0.0.1 with free
ports and a temporary data directory, and generate the stubs once."""

import os
import pathlib
import socket
import subprocess
import sys
import time

import grpc
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import cds_backend  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def stubs(tmp_path_factory):
    return cds_backend.generate_stubs(tmp_path_factory.mktemp("stubs"))


class Server:
    def __init__(self, tmp: pathlib.Path, extra: list):
        binary = os.environ.get("CDS_BIN")
        if not binary:
            pytest.fail("set CDS_BIN to the cds binary (target/debug/cds)")
        self.data = tmp / "data"
        self.data.mkdir(mode=0o700)
        self.discovery = f"127.0.0.1:{free_port()}"
        self.admin = f"127.0.0.1:{free_port()}"
        self.stderr_path = tmp / "server.log"
        self.stderr = open(self.stderr_path, "wb")
        self.process = subprocess.Popen(
            [binary, "serve", "--dev", "--data-dir", str(self.data),
             "--listen", self.discovery, "--admin-listen", self.admin, *extra],
            stdout=subprocess.DEVNULL, stderr=self.stderr,
        )

    def log(self) -> str:
        self.stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def wait_serving(self, channel: grpc.Channel, metadata=()):
        """Until the Admin listener answers Stats (the table is built)."""
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"cds serve exited ({self.process.returncode}):\n{self.log()}")
            try:
                grpc.channel_ready_future(channel).result(timeout=1)
                return
            except grpc.FutureTimeoutError:
                if time.monotonic() > deadline:
                    pytest.fail(f"cds serve did not start:\n{self.log()}")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.stderr.close()


@pytest.fixture
def start_server(tmp_path):
    started = []

    def start(*extra):
        s = Server(tmp_path, list(extra))
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """Test certificates from `cargo run -p cds-tests --example test_pki`
    (the binary in $CDS_TEST_PKI_BIN)."""
    binary = os.environ.get("CDS_TEST_PKI_BIN")
    if not binary:
        pytest.fail("set CDS_TEST_PKI_BIN to target/debug/examples/test_pki")
    d = tmp_path_factory.mktemp("pki")
    subprocess.run([binary, str(d)], check=True, stdout=subprocess.DEVNULL)
    return d
