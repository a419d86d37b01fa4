//! UniFFI's binding generator, built from the same `uniffi` version as the
//! library so the generated code always matches it:
//!
//! ```sh
//! cargo build -p cds-ffi
//! cargo run -p cds-ffi --bin uniffi-bindgen -- generate \
//!     --library target/debug/libcds_ffi.so --language kotlin --out-dir bindings/generated/kotlin
//! ```

fn main() {
    uniffi::uniffi_bindgen_main()
}
