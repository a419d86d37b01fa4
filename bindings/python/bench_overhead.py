"""Per-contact overhead of the bindings: the same cached address book
discovered by the Rust client, by the binding object called from Rust, and
from Python through the FFI, against one `cds serve` on 127.0.0.1.

    cargo build --release -p cds-ffi --example overhead
    (cd bindings/python && maturin develop --release)
    python bindings/python/bench_overhead.py [CONTACTS] [ROUNDS]

The book is cached after a first call, so each timed call is what a re-sync
costs: normalize, fetch every bucket, match, and (for the bindings) carry
the entries in and the contacts out. Prints the medians and the difference
per contact. Not a test: timings depend on the machine and its load.
"""

import asyncio
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent / "tests"))
from conftest import REPO, Server  # noqa: E402

import cds_client  # noqa: E402


def main() -> None:
    contacts = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    release = REPO / "target" / "release"
    with tempfile.TemporaryDirectory() as tmp:
        # The server serves both clients alike; CDS_BIN picks its build.
        binary = pathlib.Path(os.environ.get("CDS_BIN", REPO / "target" / "debug" / "cds"))
        server = Server(binary, pathlib.Path(tmp) / "data", quota_burst=10 * contacts)
        try:
            server.wait_until_serving()
            server.import_users([(f"+1201555{i:04}", f"user{i}", i % 2 == 0) for i in range(0, 100)])
            token = server.token("bench")
            rust = json.loads(subprocess.run(
                [str(release / "examples" / "overhead"), server.url, token, str(contacts), str(rounds)],
                check=True, capture_output=True, text=True,
            ).stdout)
            book = [f"+1201555{i % 10_000:04}" for i in range(contacts)]

            async def timed() -> list:
                client = await cds_client.connect(cds_client.ClientOptions(url=server.url, credential=token))
                await client.discover(book, "US")
                times = []
                for _ in range(rounds):
                    start = time.perf_counter()
                    found = await client.discover(book, "US")
                    times.append(time.perf_counter() - start)
                    assert len(found) == contacts and client.last_report().evaluated == 0
                return times

            python_s = statistics.median(asyncio.run(timed()))
        finally:
            server.stop()
    per = lambda s: s / contacts * 1e6  # noqa: E731
    print(f"{contacts} cached contacts, median of {rounds} calls")
    print(f"  Rust client            {rust['rust_client_s'] * 1e3:8.2f} ms  {per(rust['rust_client_s']):7.2f} us/contact")
    print(f"  binding, from Rust     {rust['ffi_from_rust_s'] * 1e3:8.2f} ms  {per(rust['ffi_from_rust_s']):7.2f} us/contact")
    print(f"  binding, from Python   {python_s * 1e3:8.2f} ms  {per(python_s):7.2f} us/contact")
    print(f"  overhead from Python   {per(python_s - rust['rust_client_s']):+.2f} us/contact")


if __name__ == "__main__":
    main()
