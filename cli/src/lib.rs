//! The library part of the `cds` command: what the binary and its tests
//! share.
//!
//! - [`settings`]: every setting of `cds serve`, described once, and the
//!   flags, environment variables, configuration file and `--print-config`
//!   made from that description.
#![forbid(unsafe_code)]

pub mod settings;
