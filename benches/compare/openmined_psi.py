#!/usr/bin/env python3
"""Compare cds with OpenMined PSI (ECDH-PSI) on the same machine, in one run.

For every server set size N this script

  * measures OpenMined PSI (`openmined-psi` on PyPI) in process, through its
    public Python API, in its recommended mode (GCS, fpr 1e-9, reveal the
    intersection) and in RAW mode (for the setup-message size);
  * runs `cds bench --local ... --json` twice (all buckets with bucket bits 0
    followed by the sync-mode steady state of `--resync`, then contacts-only
    buckets with bucket bits 16) and reads its JSON report; with `--cds-avx2`
    the same two runs again with a second build of cds (one compiled without
    the AVX-512 IFMA backend), for the backend's gain in the same run;

and prints one markdown table per N (or, with --json, one JSON document).

Everything runs one process at a time.  OpenMined's extension never starts a
thread, so it runs single-threaded, as the library does.

See README.md beside this file for how to run it and what each row means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CDS = REPO_ROOT / "target" / "release" / "cds"

INSTALL_HINT = (
    "OpenMined PSI is not installed for {python}.\n"
    "Install it with:\n\n"
    "    {python} -m pip install openmined-psi\n\n"
    "or run with --skip-openmined to measure cds only."
)

# The fields `cds bench --json` reports, with the JSON types each may have.
CDS_FIELDS: dict[str, tuple[type, ...]] = {
    "mode": (str,),
    "users": (int,),
    "contacts_per_request": (int,),
    "clients": (int,),
    "bucket_bits": (int,),
    "bucket_mode": (str,),
    "requests": (int,),
    "contacts": (int,),
    "duration_s": (int, float),
    "requests_per_s": (int, float),
    "contacts_per_s": (int, float),
    "latency_ms": (dict,),
    "bytes_up_per_request": (int, float),
    "bytes_down_per_request": (int, float),
    "server_cpu_us_per_element": (int, float),
    "client_cpu_us_per_contact": (int, float),
    "table_build_s": (int, float),
    "table_records": (int,),
    "table_bytes": (int,),
    "rss_bytes_per_user": (int, float, type(None)),
    "curve_backend": (str,),
}
# The steps of `resync` in `cds bench --resync --json`.
CDS_RESYNC_STEPS = ("first_download", "new_contacts", "unchanged", "after_changes")
CDS_LATENCY_FIELDS = ("p50", "p95", "p99", "max")

NOTES = [
    "cds computes a DLEQ proof for every request and the client verifies it "
    "(the server proves it evaluated with its committed key); OpenMined does "
    "not: its server is trusted to be honest. cds's server and client times "
    "include that proof.",
    "cds sync (zero-leak) is the client keeping its own copy of the sealed "
    "records, synced by delta (`BucketMode::Sync`): its first request "
    "downloads the whole table once per key epoch, a request then carries "
    "only new contacts' elements, and a re-sync only what changed. Its "
    "per-request row is a request for {contacts} new contacts, its first "
    "request the epoch's full download plus those contacts; its client time "
    "is the process CPU of the call less the in-process server's evaluation "
    "time (so it also counts page encoding and gRPC on both ends); its "
    "server time is the same evaluation as all-buckets'.",
    "OpenMined has no delta: after the server set changes, a client that "
    "kept its evaluated contacts re-downloads the whole setup message (the "
    "re-sync row); cds sync downloads the changed records only.",
    "cds contacts-only (b={bits}) reveals {bits} bits of each contact's hash "
    "(its bucket) to the server; cds all-buckets (b=0) downloads the whole "
    "table with every request and, like OpenMined, reveals nothing about the "
    "contacts beyond the protocol's output.",
    "Latency: OpenMined's is its client and server time of one request, in "
    "process with no network; cds's is the p50 time `cds bench` waited for "
    "the server's responses over loopback plus the client's CPU per request "
    "(sync: the whole `discover` call, measured around it).",
    "OpenMined works on P-256 (33-byte compressed points), cds on "
    "ristretto255 (32-byte points).",
    "OpenMined times are wall-clock (time.perf_counter) through the public "
    "Python API, protobuf round trips of the wrapper included; its extension "
    "starts no thread, so wall time is single-core CPU time (cpu/wall is in "
    "the JSON). cds table build and latency are wall-clock and may use every "
    "core; cds client and server ms per request are CPU time.",
    "OpenMined's GCS false-positive rate (fpr) holds for a query of at most "
    "`contacts` items: the setup message is built for that client set size, "
    "and a larger request is accepted silently at a higher false-positive "
    "rate.",
    "The ratio column is OpenMined GCS divided by the best (lowest) cds "
    "column of the default build, named in brackets; above 1 means cds is "
    "lower (better). The (AVX2) columns, with --cds-avx2, are a build "
    "without the AVX-512 IFMA backend, run on the same machine in the same "
    "run.",
]


# --------------------------------------------------------------------------
# Command line


def parse_sizes(text: str) -> list[int]:
    """Parse '100000,1000000' (or one number) into a list of positive ints."""
    sizes = []
    for part in text.split(","):
        part = part.strip().replace("_", "")
        if not part:
            continue
        value = int(part)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"set size must be positive: {value}")
        sizes.append(value)
    if not sizes:
        raise argparse.ArgumentTypeError("no set size given")
    return sizes


def parse_duration(text: str) -> str:
    """Accept '10', '10s', '2m' and hand cds a string it parses ('10s')."""
    text = text.strip()
    if text.isdigit():
        return f"{text}s"
    if len(text) > 1 and text[:-1].replace(".", "", 1).isdigit() and text[-1] in "sm":
        return text
    raise argparse.ArgumentTypeError(f"duration like 10s or 2m expected, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Compare cds with OpenMined PSI (ECDH-PSI) on this machine.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--sizes", type=parse_sizes, nargs="+", default=[[100_000, 1_000_000]],
                   help="server set sizes N, comma- or space-separated")
    p.add_argument("--contacts", type=int, default=1000,
                   help="client set size (contacts per request)")
    p.add_argument("--overlap", type=float, default=0.10,
                   help="fraction of the client's contacts that are in the server set "
                        "(OpenMined side; cds bench chooses its own)")
    p.add_argument("--fpr", type=float, default=1e-9,
                   help="OpenMined false-positive rate for one query of --contacts items")
    p.add_argument("--repeats", type=int, default=3,
                   help="OpenMined requests per mode; per-request rows are their median")
    p.add_argument("--seed", type=int, default=1, help="seed for the synthetic phone numbers")
    p.add_argument("--skip-raw", action="store_true",
                   help="skip OpenMined RAW (saves one setup of N items per size)")
    p.add_argument("--skip-openmined", action="store_true", help="measure cds only")
    p.add_argument("--skip-cds", action="store_true", help="measure OpenMined only")
    p.add_argument("--cds", type=Path, default=DEFAULT_CDS, help="path to the cds binary")
    p.add_argument("--cds-avx2", type=Path, default=None,
                   help="a second cds binary built without the AVX-512 IFMA backend "
                        "(RUSTFLAGS='--cfg curve25519_dalek_backend=\"simd\"'): "
                        "its runs become extra (AVX2) columns")
    p.add_argument("--cds-resync-changes", type=int, default=1000,
                   help="registry changes before the sync-mode re-sync that is measured")
    p.add_argument("--cds-duration", type=parse_duration, default="10s",
                   help="--duration for each cds bench run")
    p.add_argument("--cds-bucket-bits", type=int, default=16,
                   help="bucket bits for the cds contacts-only run")
    p.add_argument("--cds-timeout", type=float, default=3600.0,
                   help="seconds before one cds bench run is abandoned")
    p.add_argument("--json", action="store_true",
                   help="print one JSON document instead of markdown")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.sizes = [n for group in args.sizes for n in group]
    if args.contacts <= 0:
        parser.error("--contacts must be positive")
    if not 0.0 <= args.overlap <= 1.0:
        parser.error("--overlap must be within [0, 1]")
    if not 0.0 < args.fpr < 1.0:
        parser.error("--fpr must be within (0, 1)")
    if args.repeats <= 0:
        parser.error("--repeats must be positive")
    if not 0 <= args.cds_bucket_bits <= 32:
        parser.error("--cds-bucket-bits must be within [0, 32]")
    if args.skip_openmined and args.skip_cds:
        parser.error("--skip-openmined and --skip-cds leave nothing to measure")
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Machine and versions


def machine_info() -> dict[str, Any]:
    cpu_model = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_total = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_total = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model or platform.processor() or "unknown",
        "mem_total_bytes": mem_total,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def cds_version(cds: Path) -> str:
    proc = subprocess.run([str(cds), "--version"], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"`{cds} --version` failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout.strip()


# --------------------------------------------------------------------------
# Synthetic data


def make_dataset(n: int, contacts: int, overlap: float, seed: int
                 ) -> tuple[list[str], list[str], set[int]]:
    """N distinct server phone numbers and a client list sharing ~overlap of it.

    Server numbers come from the lower half of a 10-digit space, non-member
    contacts from the upper half, so the expected intersection is exact.
    Returns (server_items, client_items, indices of client items in the set).
    """
    half = 5_000_000_000
    if n > half:
        raise ValueError(f"set size {n} too large for the synthetic number space")
    rng = random.Random(seed)
    server = [f"+1{x:010d}" for x in rng.sample(range(half), n)]
    members = min(round(contacts * overlap), n)
    client = rng.sample(server, members)
    client += [f"+1{x:010d}" for x in rng.sample(range(half, 2 * half), contacts - members)]
    rng.shuffle(client)
    server_set = set(server)
    expected = {i for i, item in enumerate(client) if item in server_set}
    return server, client, expected


# --------------------------------------------------------------------------
# OpenMined PSI


def import_openmined():
    """Return the private_set_intersection.python module, or None."""
    try:
        import private_set_intersection.python as psi  # type: ignore
    except ImportError:
        return None
    return psi


def openmined_version(psi) -> str:
    version = getattr(psi, "__version__", None)
    if version:
        return str(version)
    try:
        from importlib.metadata import version as dist_version
        return dist_version("openmined-psi")
    except Exception:  # noqa: BLE001 - version is informative only
        return "unknown"


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run fn once; return (result, wall seconds, process CPU seconds)."""
    c0 = time.process_time()
    w0 = time.perf_counter()
    result = fn()
    w1 = time.perf_counter()
    c1 = time.process_time()
    return result, w1 - w0, c1 - c0


def om_measure_setup(psi, server, items: list[str], fpr: float, num_client_inputs: int,
                     ds) -> dict[str, Any]:
    """server.CreateSetupMessage for the whole set, timed once."""
    setup, wall, cpu = timed(
        lambda: server.CreateSetupMessage(fpr, num_client_inputs, items, ds))
    return {
        "setup": setup,
        "setup_s": wall,
        "setup_cpu_s": cpu,
        "setup_bytes": len(setup.SerializeToString()),
    }


def om_measure_request(psi, server, setup, client_items: list[str]) -> dict[str, Any]:
    """One request: client.CreateRequest, server.ProcessRequest, client.GetIntersection.

    A fresh client key per request (key generation is not timed).
    """
    client = psi.client.CreateWithNewKey(True)
    request, req_wall, req_cpu = timed(lambda: client.CreateRequest(client_items))
    request_bytes = len(request.SerializeToString())
    response, srv_wall, srv_cpu = timed(lambda: server.ProcessRequest(request))
    response_bytes = len(response.SerializeToString())
    found, int_wall, int_cpu = timed(lambda: client.GetIntersection(setup, response))
    return {
        "client_s": req_wall + int_wall,
        "client_cpu_s": req_cpu + int_cpu,
        "create_request_s": req_wall,
        "get_intersection_s": int_wall,
        "server_s": srv_wall,
        "server_cpu_s": srv_cpu,
        "request_bytes": request_bytes,
        "response_bytes": response_bytes,
        "found": set(found),
    }


def om_median_requests(psi, server, setup, client_items: list[str], expected: set[int],
                       repeats: int) -> dict[str, Any]:
    """Median of `repeats` requests for every timing; bytes and correctness of each."""
    runs = [om_measure_request(psi, server, setup, client_items) for _ in range(repeats)]
    med = {key: statistics.median(r[key] for r in runs)
           for key in ("client_s", "client_cpu_s", "create_request_s", "get_intersection_s",
                       "server_s", "server_cpu_s")}
    med["latency_s"] = statistics.median(r["client_s"] + r["server_s"] for r in runs)
    med["request_bytes"] = statistics.median(r["request_bytes"] for r in runs)
    med["response_bytes"] = statistics.median(r["response_bytes"] for r in runs)
    med["bytes_per_request"] = med["request_bytes"] + med["response_bytes"]
    false_pos = [len(r["found"] - expected) for r in runs]
    missed = [len(expected - r["found"]) for r in runs]
    med["matches_expected"] = len(expected)
    med["false_positives"] = false_pos
    med["missed"] = missed
    med["correct"] = not any(missed) and not any(false_pos)
    wall = sum(r["client_s"] + r["server_s"] for r in runs)
    cpu = sum(r["client_cpu_s"] + r["server_cpu_s"] for r in runs)
    med["cpu_over_wall"] = cpu / wall if wall > 0 else None
    med["repeats"] = repeats
    return med


def om_run_mode(psi, items: list[str], client_items: list[str], expected: set[int],
                ds_name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Setup and requests for one OpenMined data structure (GCS or RAW)."""
    ds = getattr(psi.DataStructure, ds_name)
    server = psi.server.CreateWithNewKey(True)
    log(f"  openmined {ds_name}: CreateSetupMessage for {len(items):,} items")
    setup_result = om_measure_setup(psi, server, items, args.fpr, args.contacts, ds)
    setup = setup_result.pop("setup")
    log(f"  openmined {ds_name}: setup {setup_result['setup_s']:.2f} s, "
        f"{setup_result['setup_bytes']:,} bytes; {args.repeats} requests")
    req = om_median_requests(psi, server, setup, client_items, expected, args.repeats)
    if not req["correct"]:
        log(f"  openmined {ds_name}: WARNING intersection differs from the expected one "
            f"(false positives {req['false_positives']}, missed {req['missed']})")
    return {
        "data_structure": ds_name,
        "fpr": args.fpr,
        "num_client_inputs": args.contacts,
        "reveal_intersection": True,
        **setup_result,
        **req,
        "first_request_bytes": req["bytes_per_request"] + setup_result["setup_bytes"],
    }


def run_openmined(psi, n: int, args: argparse.Namespace) -> dict[str, Any]:
    items, client_items, expected = make_dataset(n, args.contacts, args.overlap, args.seed)
    modes = ["GCS"] if args.skip_raw else ["GCS", "RAW"]
    return {ds: om_run_mode(psi, items, client_items, expected, ds, args) for ds in modes}


# --------------------------------------------------------------------------
# cds


class CdsError(RuntimeError):
    pass


def cds_command(cds: Path, n: int, contacts: int, bucket_bits: int, contacts_only: bool,
                duration: str, resync_changes: int | None = None) -> list[str]:
    cmd = [str(cds), "bench", "--local", "--users", str(n), "--contacts", str(contacts),
           "--clients", "1", "--duration", duration, "--bucket-bits", str(bucket_bits)]
    if contacts_only:
        cmd.append("--contacts-only")
    if resync_changes is not None:
        cmd += ["--resync", "--resync-changes", str(resync_changes)]
    cmd.append("--json")
    return cmd


def parse_cds_json(stdout: str) -> dict[str, Any]:
    """The JSON object cds printed: the whole stdout, or else its last JSON line."""
    text = stdout.strip()
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        obj = None
        for line in reversed(text.splitlines()):
            line = line.strip()
            if line.startswith("{"):
                try:
                    obj = json.loads(line)
                    break
                except json.JSONDecodeError:
                    continue
    if not isinstance(obj, dict):
        raise CdsError("cds bench printed no JSON object on stdout; stdout was:\n"
                       + (text[-2000:] or "(empty)"))
    return obj


def validate_cds_report(obj: dict[str, Any], n: int, contacts: int, bucket_bits: int,
                        bucket_mode: str) -> None:
    missing = [k for k in CDS_FIELDS if k not in obj]
    if missing:
        raise CdsError("cds bench JSON lacks field(s): " + ", ".join(missing)
                       + "\n(expected fields: " + ", ".join(CDS_FIELDS) + ")")
    wrong = [f"{k} (got {type(obj[k]).__name__})" for k, types in CDS_FIELDS.items()
             if not isinstance(obj[k], types) or isinstance(obj[k], bool)]
    if wrong:
        raise CdsError("cds bench JSON field(s) of the wrong type: " + ", ".join(wrong))
    lat_missing = [k for k in CDS_LATENCY_FIELDS if not isinstance(obj["latency_ms"].get(k),
                                                                   (int, float))]
    if lat_missing:
        raise CdsError("cds bench JSON latency_ms lacks numeric field(s): "
                       + ", ".join(lat_missing))
    echo = {"mode": "local", "users": n, "contacts_per_request": contacts, "clients": 1,
            "bucket_bits": bucket_bits, "bucket_mode": bucket_mode}
    mismatched = [f"{k}={obj[k]!r} (asked for {v!r})" for k, v in echo.items() if obj[k] != v]
    if mismatched:
        raise CdsError("cds bench did not run what was asked: " + ", ".join(mismatched))
    if obj["requests"] <= 0:
        raise CdsError("cds bench completed no request; raise --cds-duration")


def run_cds(cds: Path, n: int, args: argparse.Namespace, bucket_bits: int,
            contacts_only: bool, resync: bool = False) -> dict[str, Any]:
    cmd = cds_command(cds, n, args.contacts, bucket_bits, contacts_only, args.cds_duration,
                      args.cds_resync_changes if resync else None)
    log("  " + " ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.cds_timeout)
    except subprocess.TimeoutExpired as e:
        raise CdsError(f"cds bench took longer than --cds-timeout {args.cds_timeout:g} s") from e
    if proc.returncode != 0:
        raise CdsError(f"cds bench exited with {proc.returncode}:\n{proc.stderr.strip()[-3000:]}")
    report = parse_cds_json(proc.stdout)
    validate_cds_report(report, n, args.contacts, bucket_bits,
                        "contacts" if contacts_only else "all")
    k = report["contacts_per_request"]
    derived = {
        "setup_s": report["table_build_s"],
        "setup_bytes": report["table_bytes"],
        "client_s": report["client_cpu_us_per_contact"] * k / 1e6,
        "server_s": report["server_cpu_us_per_element"] * k / 1e6,
        # cds bench's latency is the time spent waiting for responses; the
        # client's own work is added so the row compares with OpenMined's
        # client + server time.
        "latency_s": report["latency_ms"]["p50"] / 1e3
        + report["client_cpu_us_per_contact"] * k / 1e6,
        "bytes_per_request": report["bytes_up_per_request"] + report["bytes_down_per_request"],
    }
    # Everything a cds client needs comes with each request: nothing to fetch first.
    derived["first_request_bytes"] = derived["bytes_per_request"]
    # Without a delta, a re-sync after changes is a request like any other.
    derived["resync_bytes"] = derived["bytes_per_request"]
    return {"command": cmd, "report": report, **derived}


def sync_column(run: dict[str, Any]) -> dict[str, Any]:
    """The sync-mode column, from the `resync` object of an all-buckets run."""
    report = run["report"]
    resync = report.get("resync")
    if not isinstance(resync, dict):
        raise CdsError("cds bench --resync printed no `resync` object")
    for step in CDS_RESYNC_STEPS:
        s = resync.get(step)
        if not isinstance(s, dict) or not all(
                isinstance(s.get(k), (int, float)) for k in ("bytes_up", "bytes_down",
                                                           "latency_ms")):
            raise CdsError(f"cds bench JSON resync.{step} lacks bytes_up/bytes_down/latency_ms")
    new = resync["new_contacts"]
    if new.get("client_cpu_ms") is None:
        raise CdsError("cds bench JSON resync.new_contacts lacks client_cpu_ms "
                       "(a cds older than this script?)")
    total = lambda s: s["bytes_up"] + s["bytes_down"]  # noqa: E731
    return {
        "command": run["command"],
        "report": report,
        "setup_s": run["setup_s"],
        "setup_bytes": run["setup_bytes"],
        "client_s": new["client_cpu_ms"] / 1e3,
        "server_s": run["server_s"],
        "latency_s": new["latency_ms"] / 1e3,
        "bytes_per_request": total(new),
        "first_request_bytes": total(resync["first_download"]),
        "resync_bytes": total(resync["after_changes"]),
        "resync": resync,
    }


def run_cds_modes(cds: Path, n: int, args: argparse.Namespace) -> dict[str, Any]:
    """All-buckets (with the sync steady state after it) and contacts-only."""
    every = run_cds(cds, n, args, bucket_bits=0, contacts_only=False, resync=True)
    return {
        "all": every,
        "sync": sync_column(every),
        "contacts": run_cds(cds, n, args, bucket_bits=args.cds_bucket_bits, contacts_only=True),
    }


def check_cds_binary(cds: Path) -> Path:
    resolved = cds if cds.exists() else (Path(shutil.which(str(cds)) or cds))
    if not resolved.exists() or not os.access(resolved, os.X_OK):
        raise CdsError(f"cds binary not found or not executable: {cds}\n"
                       "Build it with `cargo build --release -p cds-cli`, pass --cds PATH, "
                       "or run with --skip-cds.")
    return resolved


# --------------------------------------------------------------------------
# Output

def fmt_s(v: float) -> str:
    return f"{v:.3g} s" if v < 100 else f"{v:,.0f} s"


def fmt_ms(v: float) -> str:
    ms = v * 1e3
    return f"{ms:.3g} ms" if ms < 1000 else f"{ms:,.0f} ms"


def fmt_bytes(v: float) -> str:
    v = float(v)
    if v >= 1e6:
        human = f"{v / 1e6:.3g} MB"
    elif v >= 1e3:
        human = f"{v / 1e3:.3g} kB"
    else:
        return f"{v:,.0f} B"
    return f"{v:,.0f} B ({human})"


ROWS: list[tuple[str, str, Callable[[float], str]]] = [
    ("server setup (OpenMined CreateSetupMessage; cds table build, wall)", "setup_s", fmt_s),
    ("setup message / table bytes", "setup_bytes", fmt_bytes),
    ("client time per request (OpenMined CreateRequest+GetIntersection; cds CPU)",
     "client_s", fmt_ms),
    ("server time per request (OpenMined ProcessRequest; cds CPU)", "server_s", fmt_ms),
    ("request latency (OpenMined client + server, in process; cds bench p50 wait + client CPU; sync: the whole call)",
     "latency_s", fmt_ms),
    ("bytes per request (up + down)", "bytes_per_request", fmt_bytes),
    ("bytes for a client's first request (incl. setup-message download)",
     "first_request_bytes", fmt_bytes),
    ("bytes to re-sync after {changes:,} registry changes (OpenMined: a new setup message)",
     "resync_bytes", fmt_bytes),
]


def ratio_cell(om: dict | None, cds_cols: list[tuple[str, dict | None]], key: str) -> str:
    present = [(label, col[key]) for label, col in cds_cols if col is not None]
    if om is None or not present:
        return "—"
    label, best = min(present, key=lambda p: p[1])
    if best <= 0:
        return "—"
    return f"{om[key] / best:.3g}× ({label})"


def markdown_for_size(n: int, entry: dict[str, Any], contacts: int, bucket_bits: int,
                      changes: int) -> str:
    om = entry.get("openmined") or {}
    gcs, raw = om.get("GCS"), om.get("RAW")
    if gcs is not None and "resync_bytes" not in gcs:
        gcs["resync_bytes"] = gcs["setup_bytes"]
    if raw is not None and "resync_bytes" not in raw:
        raw["resync_bytes"] = raw["setup_bytes"]
    cds = entry.get("cds") or {}
    avx2 = entry.get("cds_avx2") or {}
    names = [("all", "all-buckets (b=0)"), ("contacts", f"contacts-only (b={bucket_bits})"),
             ("sync", "sync (zero-leak)")]
    columns = [("OpenMined GCS", gcs), ("OpenMined RAW", raw),
               *[(f"cds {title}", cds.get(key)) for key, title in names],
               *[(f"cds {title} (AVX2)", avx2.get(key)) for key, title in names if avx2]]
    cds_cols = [(key if key != "contacts" else "contacts-only", cds.get(key))
                for key, _ in names]
    head = ["", *[c[0] for c in columns], "OpenMined GCS ÷ best cds"]
    lines = [f"### N = {n:,} server users, {contacts:,} contacts per request", "",
             "| " + " | ".join(head) + " |",
             "|" + "---|" + "---:|" * (len(head) - 1)]
    for title, key, fmt in ROWS:
        cells = [fmt(col[key]) if col is not None else "—" for _, col in columns]
        lines.append("| " + " | ".join([title.format(changes=changes), *cells,
                                        ratio_cell(gcs, cds_cols, key)]) + " |")
    extra = []
    for label, col in (("GCS", gcs), ("RAW", raw)):
        if col is not None:
            fp = col["false_positives"]
            extra.append(f"OpenMined {label}: {col['matches_expected']} expected matches, "
                         f"{'correct' if col['correct'] else 'NOT correct'} in "
                         f"{col['repeats']} request(s) (false positives {fp}, missed "
                         f"{col['missed']}); request {col['request_bytes']:,.0f} B, response "
                         f"{col['response_bytes']:,.0f} B; cpu/wall {col['cpu_over_wall']:.2f}.")
    for label, col in (("all-buckets", cds.get("all")), ("contacts-only", cds.get("contacts")),
                       ("all-buckets (AVX2)", avx2.get("all")),
                       ("contacts-only (AVX2)", avx2.get("contacts"))):
        if col is not None:
            r = col["report"]
            extra.append(f"cds {label}, curve backend {r['curve_backend']}: "
                         f"{r['requests']} requests in {r['duration_s']:.1f} s, "
                         f"latency p95 {r['latency_ms']['p95']:.3g} ms, "
                         f"up {r['bytes_up_per_request']:,.0f} B, "
                         f"down {r['bytes_down_per_request']:,.0f} B, "
                         f"{r['table_records']:,} table records.")
    for label, col in (("sync", cds.get("sync")), ("sync (AVX2)", avx2.get("sync"))):
        if col is not None:
            rs = col["resync"]
            parts = [f"{step.replace('_', ' ')} {rs[step]['bytes_up']:,} B up + "
                     f"{rs[step]['bytes_down']:,} B down, {rs[step]['latency_ms']:.3g} ms"
                     for step in CDS_RESYNC_STEPS]
            extra.append(f"cds {label}: " + "; ".join(parts)
                         + f"; client storage {rs['client_storage_bytes']:,} B.")
    if extra:
        lines.append("")
        lines.extend(f"- {e}" for e in extra)
    return "\n".join(lines)


def markdown_report(result: dict[str, Any]) -> str:
    m, v, p = result["machine"], result["versions"], result["parameters"]
    out = ["# cds vs OpenMined PSI", "",
           f"Machine: {m['nproc']} usable CPUs ({m['cpu_count']} online), {m['cpu_model']}"
           + (f", {m['mem_total_bytes'] / 2**30:.1f} GiB RAM" if m["mem_total_bytes"] else "")
           + f"; {m['os']}; Python {m['python']}.",
           f"Versions: openmined-psi {v.get('openmined_psi') or '(not run)'}; "
           f"cds {v.get('cds') or '(not run)'}.",
           f"Parameters: {p['contacts']:,} contacts per request, about "
           f"{p['overlap']:.0%} in the server set (OpenMined side); OpenMined fpr "
           f"{p['fpr']:g}, reveal_intersection=True, median of {p['repeats']} requests; "
           f"cds bench --duration {p['cds_duration']}.", ""]
    for n in p["sizes"]:
        out.append(markdown_for_size(n, result["results"][str(n)], p["contacts"],
                                     p["cds_bucket_bits"], p["cds_resync_changes"]))
        out.append("")
    out.append("Notes:")
    out.append("")
    out.extend(f"- {note}" for note in result["notes"])
    return "\n".join(out)


def json_ready(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, set):
        return sorted(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    psi = None
    if not args.skip_openmined:
        psi = import_openmined()
        if psi is None:
            log(INSTALL_HINT.format(python=sys.executable))
            return 2

    cds = cds_avx2 = None
    versions: dict[str, str | None] = {
        "openmined_psi": openmined_version(psi) if psi else None, "cds": None}
    if not args.skip_cds:
        try:
            cds = check_cds_binary(args.cds)
            versions["cds"] = cds_version(cds)
            if args.cds_avx2 is not None:
                cds_avx2 = check_cds_binary(args.cds_avx2)
                versions["cds_avx2"] = cds_version(cds_avx2)
        except (CdsError, RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            log(f"error: {e}")
            return 2

    results: dict[str, Any] = {}
    for n in args.sizes:
        log(f"N = {n:,}")
        entry: dict[str, Any] = {}
        if psi is not None:
            entry["openmined"] = run_openmined(psi, n, args)
        if cds is not None:
            try:
                entry["cds"] = run_cds_modes(cds, n, args)
                if cds_avx2 is not None:
                    entry["cds_avx2"] = run_cds_modes(cds_avx2, n, args)
            except CdsError as e:
                log(f"error: {e}")
                return 1
        results[str(n)] = entry

    result = {
        "machine": machine_info(),
        "versions": versions,
        "parameters": {
            "sizes": args.sizes, "contacts": args.contacts, "overlap": args.overlap,
            "fpr": args.fpr, "repeats": args.repeats, "seed": args.seed,
            "cds_duration": args.cds_duration, "cds_bucket_bits": args.cds_bucket_bits,
            "cds_resync_changes": args.cds_resync_changes,
            "skip_raw": args.skip_raw, "skip_cds": args.skip_cds,
            "skip_openmined": args.skip_openmined,
        },
        "results": results,
        "notes": [note.format(bits=args.cds_bucket_bits, contacts=args.contacts)
                  for note in NOTES],
    }
    if args.json:
        json.dump(json_ready(result), sys.stdout, indent=2)
        print()
    else:
        print(markdown_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
