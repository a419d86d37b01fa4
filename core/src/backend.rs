//! Which curve25519-dalek backend does the group arithmetic in this
//! process.
//!
//! curve25519-dalek 5 compiles, on x86-64, an AVX2 backend and the serial
//! one, and the AVX-512 IFMA backend too when built with
//! `--cfg curve25519_dalek_backend="avx512"` (this workspace's
//! `.cargo/config.toml` sets it) or for a target CPU that has IFMA. At run
//! time it uses the fastest of those the CPU has: AVX-512 IFMA with
//! AVX-512 VL, else AVX2, else serial. It does not say which it picked, so
//! [`CurveBackend::detect`] makes the same choice from the same build
//! configuration and CPU features.

/// A curve25519-dalek arithmetic backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CurveBackend {
    /// AVX-512 IFMA (with AVX-512 VL): the fastest.
    Avx512Ifma,
    /// AVX2.
    Avx2,
    /// Portable 64-bit (or 32-bit) code.
    Serial,
}

/// Whether this build compiled dalek's AVX-512 IFMA backend.
const AVX512_COMPILED: bool = cfg!(all(
    target_arch = "x86_64",
    target_pointer_width = "64",
    any(
        curve25519_dalek_backend = "avx512",
        all(
            target_feature = "avx512ifma",
            target_feature = "avx512vl",
            not(curve25519_dalek_backend = "simd"),
            not(curve25519_dalek_backend = "serial"),
            not(curve25519_dalek_backend = "fiat")
        )
    )
));

/// Whether this build compiled dalek's AVX2 backend (every x86-64 build
/// unless the serial or fiat backend was forced).
const AVX2_COMPILED: bool = cfg!(all(
    target_arch = "x86_64",
    target_pointer_width = "64",
    not(curve25519_dalek_backend = "serial"),
    not(curve25519_dalek_backend = "fiat")
));

impl CurveBackend {
    /// The backend curve25519-dalek uses on this CPU, as this build
    /// compiled it.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if AVX512_COMPILED
                && std::arch::is_x86_feature_detected!("avx512ifma")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                return Self::Avx512Ifma;
            }
            if AVX2_COMPILED && std::arch::is_x86_feature_detected!("avx2") {
                return Self::Avx2;
            }
        }
        Self::Serial
    }

    /// Whether this build can use AVX-512 IFMA on a CPU that has it.
    pub fn avx512_compiled() -> bool {
        AVX512_COMPILED
    }

    /// A short name: `avx512ifma`, `avx2` or `serial`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Avx512Ifma => "avx512ifma",
            Self::Avx2 => "avx2",
            Self::Serial => "serial",
        }
    }
}

impl std::fmt::Display for CurveBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_workspace_build_compiles_the_avx512_ifma_backend() {
        assert!(
            CurveBackend::avx512_compiled(),
            "built without --cfg curve25519_dalek_backend=\"avx512\" (.cargo/config.toml; a RUSTFLAGS variable replaces it)"
        );
    }

    #[test]
    fn backends_have_short_stable_names() {
        assert_eq!(CurveBackend::Avx512Ifma.to_string(), "avx512ifma");
        assert_eq!(CurveBackend::Avx2.to_string(), "avx2");
        assert_eq!(CurveBackend::Serial.to_string(), "serial");
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn an_avx2_cpu_without_ifma_runs_the_avx2_backend() {
        if std::arch::is_x86_feature_detected!("avx2")
            && !std::arch::is_x86_feature_detected!("avx512ifma")
        {
            assert_eq!(CurveBackend::detect(), CurveBackend::Avx2);
        }
    }
}
