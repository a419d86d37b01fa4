#!/usr/bin/env bash
# Build every fuzz target once, then run each for a bounded time on its
# seed corpus (fuzz/corpus/<target>, read only; new inputs go to
# fuzz/target/corpus-work/<target>). Fails if any target crashes, and
# prints one summary line per target.
#
#   bash fuzz/run.sh                 # every target, 20 s each
#   FUZZ_SECONDS=300 bash fuzz/run.sh discover_request admin_import
#
# FUZZ_QUICK=1 builds for a smoke run, as CI does: no AddressSanitizer,
# opt-level 1, no debug info and 16 codegen units (cargo-fuzz otherwise
# forces one per crate, which is slow to build), into fuzz/target/quick
# (so it does not overwrite the full build). It still catches panics, overflows, aborts
# and timeouts, but not memory errors in dependencies' unsafe code, and
# executes fewer inputs per second; use the default for long runs.
#
# Needs only stable Rust, a C++ compiler (libFuzzer is built from source)
# and crates.io: cargo-fuzz is installed if missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${FUZZ_SECONDS:-20}"
# cargo-fuzz builds with -Z flags (sanitizer, coverage instrumentation);
# this lets stable rustc accept them, so CI needs no nightly toolchain.
export RUSTC_BOOTSTRAP=1
# cargo-fuzz passes its flags in RUSTFLAGS, which replaces the build
# rustflags of .cargo/config.toml: repeat the curve backend cfg here (it
# appends what RUSTFLAGS already holds), so the fuzzed code is the code that
# ships, AVX-512 IFMA backend included.
export RUSTFLAGS="${RUSTFLAGS:-} --cfg curve25519_dalek_backend=\"avx512\""
# Debug assertions: integer overflow and debug_assert! fail loudly.
flags=(--debug-assertions)
kind=full
if [ "${FUZZ_QUICK:-0}" = 1 ]; then
    kind=quick
    flags+=(--sanitizer none --codegen-units 16 --target-dir fuzz/target/quick)
    export CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=0
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "--- installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

echo "--- cargo fuzz build (${#targets[@]} targets)"
started=$(date +%s)
cargo fuzz build "${flags[@]}"
echo "built in $(($(date +%s) - started)) s"

logs=fuzz/target/logs
mkdir -p "$logs"
failed=()
summary=()
for target in "${targets[@]}"; do
    echo "--- fuzz $target (${seconds} s)"
    work="fuzz/target/corpus-work/$target"
    mkdir -p "$work"
    log="$logs/$target.log"
    status=ok
    # The first corpus directory receives new inputs; the seeds stay as
    # they are checked in.
    if ! cargo fuzz run "${flags[@]}" "$target" "$work" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 \
        -print_final_stats=1 >"$log" 2>&1; then
        status=CRASH
        failed+=("$target")
        tail -n 60 "$log"
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    last=$(grep -E '^#[0-9]+.* cov: ' "$log" | tail -n 1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$last")
    line=$(printf '%-18s %-5s execs %-9s cov %-6s ft %-6s corpus %s' \
        "$target" "$status" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}")
    echo "$line"
    summary+=("$line")
done

echo "--- fuzz summary (${seconds} s per target, $kind build)"
printf '%s\n' "${summary[@]}"
# The plain closing line CI readers look for.
echo "fuzz: $((${#targets[@]} - ${#failed[@]})) passed, ${#failed[@]} failed"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "error: fuzz targets crashed: ${failed[*]} (inputs in fuzz/artifacts/, logs in $logs/)" >&2
    exit 1
fi
