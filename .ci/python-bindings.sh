#!/usr/bin/env bash
# The client's bindings (bindings/, README "Python", "Kotlin", "Swift"):
# build the Python package with maturin and run its pytest suite against a
# real `cds serve` on 127.0.0.1; then generate the Kotlin and Swift sources
# from the same library, so the definitions cannot rot. No Kotlin or Swift
# compiler runs here (none is installed): the generated sources are checked
# for the API they must expose, not compiled.
# Needs cargo and python3 (3.9 or newer, with venv); installs pinned maturin
# and pytest from PyPI into target/python-venv.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MATURIN_VERSION=1.16.0
PYTEST_VERSION=9.2.0
VENV=target/python-venv

echo "--- python bindings: the cds binary the tests start"
cargo build --locked -p cds-cli

echo "--- python bindings: venv with maturin ${MATURIN_VERSION} and pytest ${PYTEST_VERSION}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "maturin==${MATURIN_VERSION}" "pytest==${PYTEST_VERSION}"

echo "--- python bindings: maturin develop (bindings/python)"
(
    cd bindings/python
    VIRTUAL_ENV="$PWD/../../$VENV" PATH="$PWD/../../$VENV/bin:$PATH" \
        maturin develop --locked
)

echo "--- python bindings: pytest against cds serve on 127.0.0.1"
(
    cd bindings/python
    CDS_BIN="$PWD/../../target/debug/cds" "../../$VENV/bin/python" -m pytest -q
)

echo "--- kotlin and swift sources (uniffi-bindgen, the documented command)"
cargo build --locked -p cds-ffi
for language in kotlin swift; do
    rm -rf "target/bindings/$language"
    cargo run --locked -q -p cds-ffi --bin uniffi-bindgen -- generate --no-format \
        --library target/debug/libcds_ffi.so --language "$language" \
        --out-dir "target/bindings/$language"
done
kotlin=target/bindings/kotlin/uniffi/cds/cds.kt
swift=target/bindings/swift/cds.swift
for needle in "suspend fun \`connect\`(\`options\`: ClientOptions)" \
    "suspend fun \`discover\`(\`entries\`: List<kotlin.String>, \`region\`: kotlin.String)" \
    "sealed class DiscoveryException" "class QuotaExceeded(" "class EpochChanged(" \
    "sealed class Contact" "enum class InvalidReason" \
    "suspend fun \`uploadAllowList\`(\`entries\`: List<kotlin.String>, \`region\`: kotlin.String, \`label\`: kotlin.ByteArray): kotlin.UInt" \
    "var \`identityKeys\`: kotlin.ByteArray? = null" \
    "var \`contactsIssuerPublicKey\`: kotlin.ByteArray? = null" \
    "var \`foundByAllowList\`: kotlin.ULong" \
    "enum class BucketMode" "SYNC;" "var \`bucketMode\`: BucketMode? = null" \
    "var \`contactsOnly\`: kotlin.Boolean = false" \
    "var \`syncRequests\`: kotlin.ULong" "var \`syncBytesReceived\`: kotlin.ULong" \
    "var \`fullDownload\`: kotlin.Boolean"; do
    grep -qF "$needle" "$kotlin" || { echo "error: $kotlin lacks: $needle" >&2; exit 1; }
done
for needle in "public func connect(options: ClientOptions)async throws  -> DiscoveryClient" \
    "func discover(entries: [String], region: String)" \
    "enum DiscoveryError: Swift.Error" "case QuotaExceeded(" "case EpochChanged(" \
    "public enum Contact" "public enum InvalidReason" \
    "func uploadAllowList(entries: [String], region: String, label: Data) async throws  -> UInt32" \
    "public var identityKeys: Data?" "public var contactsIssuerPublicKey: Data?" \
    "public var foundByAllowList: UInt64" \
    "public enum BucketMode" "case sync" "public var bucketMode: BucketMode?" \
    "public var syncRequests: UInt64" "public var syncBytesReceived: UInt64" \
    "public var fullDownload: Bool"; do
    grep -qF "$needle" "$swift" || { echo "error: $swift lacks: $needle" >&2; exit 1; }
done
echo "generated $(wc -l < "$kotlin") lines of Kotlin, $(wc -l < "$swift") lines of Swift (not compiled: no Kotlin or Swift toolchain here)"
