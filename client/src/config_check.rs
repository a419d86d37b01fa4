//! What a client accepts from `GetConfig`: the suite, a key the app's
//! profile lists, at most its bucket bits, a usable batch limit
//! (docs/protocol.md §7), before any contact-derived byte is sent.

use cds_core::{BucketBits, PublicKey, ServerProfile};
use cds_proto::v1::Config;
use cds_proto::wire;

use crate::error::ClientError;
use crate::session::ServerParams;

/// The most bucket bits a client without a [`ServerProfile`] accepts from
/// the server (65,536 buckets). In contacts-only mode the server learns
/// this many bits of a hash of every contact looked up; a server announcing
/// more is refused ([`ClientError::BucketBitsAboveCeiling`]). An app whose
/// server legitimately uses more buckets ships a profile with a higher
/// ceiling; `docs/threat-model.md` gives the figures.
pub const DEFAULT_MAX_BUCKET_BITS: u8 = 16;

/// The ceiling of a client without a profile (checked at compile time).
pub(crate) const DEFAULT_CEILING: BucketBits = match BucketBits::new(DEFAULT_MAX_BUCKET_BITS) {
    Ok(bits) => bits,
    Err(_) => panic!("DEFAULT_MAX_BUCKET_BITS is above MAX_BUCKET_BITS"),
};

/// Check a `GetConfig` answer against the app's profile (or, without one,
/// the default ceiling) and the protocol's rules: the suite, the public
/// key, the bucket bits and the batch limit (docs/protocol.md §7).
pub(crate) fn accept_config(
    c: Config,
    profile: Option<&ServerProfile>,
) -> Result<ServerParams, ClientError> {
    // In v1 a profile's suite is the one suite this client speaks.
    let suite = profile.map_or(wire::SUITE, |p| p.suite().name());
    if c.suite != suite {
        return Err(ClientError::UnsupportedSuite(c.suite));
    }
    if c.record_format != wire::RECORD_FORMAT {
        return Err(ClientError::UnsupportedRecordFormat {
            server: c.record_format,
        });
    }
    let public_key = PublicKey::from_slice(&c.public_key).map_err(|_| {
        ClientError::ServerMisconfigured("the public key is not a canonical ristretto255 element")
    })?;
    if profile.is_some_and(|p| !p.accepts(&public_key)) {
        return Err(ClientError::PublicKeyMismatch);
    }
    let bucket_bits = u8::try_from(c.bucket_bits)
        .ok()
        .and_then(|b| BucketBits::new(b).ok())
        .ok_or(ClientError::ServerMisconfigured("bucket bits out of range"))?;
    let ceiling = profile.map_or(DEFAULT_CEILING, ServerProfile::max_bucket_bits);
    if bucket_bits.get() > ceiling.get() {
        return Err(ClientError::BucketBitsAboveCeiling {
            announced: bucket_bits.get(),
            ceiling: ceiling.get(),
        });
    }
    let max = (c.max_elements_per_request as usize).min(cds_core::MAX_BATCH);
    if max == 0 {
        return Err(ClientError::ServerMisconfigured(
            "the server accepts no elements",
        ));
    }
    Ok(ServerParams {
        epoch: c.epoch,
        public_key,
        bucket_bits,
        max_elements_per_request: max,
        bucket_scheme: c.bucket_scheme,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cds_core::KeyPair;

    fn key() -> PublicKey {
        *KeyPair::generate(&mut rand::rng()).public()
    }

    fn config(public_key: &PublicKey, bucket_bits: u32) -> Config {
        Config {
            epoch: 7,
            public_key: public_key.to_bytes().to_vec().into(),
            bucket_bits,
            max_elements_per_request: 100,
            suite: wire::SUITE.to_owned(),
            bucket_scheme: wire::BUCKET_SCHEME_TAG,
            record_format: wire::RECORD_FORMAT,
        }
    }

    #[test]
    fn a_server_of_another_record_format_is_refused_before_anything_is_sent() {
        let k = key();
        for format in [0, 1, 3] {
            let old = Config {
                record_format: format,
                ..config(&k, 4)
            };
            let err = accept_config(old, None).expect_err("refused");
            assert!(
                matches!(err, ClientError::UnsupportedRecordFormat { server } if server == format)
            );
            assert!(err.to_string().contains("upgrade"));
        }
        assert!(accept_config(config(&k, 4), None).is_ok());
    }

    fn profile(keys: &[PublicKey], ceiling: u8) -> ServerProfile {
        ServerProfile::new(
            keys.iter().copied(),
            BucketBits::new(ceiling).expect("valid"),
        )
        .expect("valid profile")
    }

    #[test]
    fn a_config_inside_the_profile_is_accepted() {
        let (current, next) = (key(), key());
        let p = profile(&[current, next], 8);
        for k in [current, next] {
            let params = accept_config(config(&k, 8), Some(&p)).expect("accepted");
            assert_eq!(params.public_key, k);
            assert_eq!(params.bucket_bits.get(), 8);
        }
    }

    #[test]
    fn each_way_out_of_the_profile_has_its_own_error() {
        let (trusted, other) = (key(), key());
        let p = profile(&[trusted], 8);
        let mut wrong_suite = config(&trusted, 8);
        wrong_suite.suite = "P256-SHA256".into();
        assert!(matches!(
            accept_config(wrong_suite, Some(&p)),
            Err(ClientError::UnsupportedSuite(_))
        ));
        assert!(matches!(
            accept_config(config(&other, 8), Some(&p)),
            Err(ClientError::PublicKeyMismatch)
        ));
        assert!(matches!(
            accept_config(config(&trusted, 9), Some(&p)),
            Err(ClientError::BucketBitsAboveCeiling {
                announced: 9,
                ceiling: 8
            })
        ));
        assert!(matches!(
            accept_config(config(&trusted, 25), Some(&p)),
            Err(ClientError::ServerMisconfigured(_))
        ));
    }

    #[test]
    fn without_a_profile_any_key_and_the_default_ceiling() {
        assert!(accept_config(config(&key(), 16), None).is_ok());
        let err = accept_config(config(&key(), 17), None).expect_err("above 16");
        assert!(matches!(
            err,
            ClientError::BucketBitsAboveCeiling {
                announced: 17,
                ceiling: DEFAULT_MAX_BUCKET_BITS
            }
        ));
        let message = err.to_string();
        assert!(
            message.contains("17") && message.contains("16"),
            "{message}"
        );
    }

    #[test]
    fn a_pinned_key_is_a_profile_of_that_key_with_the_default_ceiling() {
        let k = key();
        let builder = crate::Client::builder("http://127.0.0.1:1").pin_public_key(k);
        let p = builder.pinned.expect("pinned");
        assert_eq!(p.keys(), [k]);
        assert_eq!(p.max_bucket_bits().get(), DEFAULT_MAX_BUCKET_BITS);
    }
}
