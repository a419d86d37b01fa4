//! The registry's stored values (a user, a change-log entry) as read back
//! from a damaged or crafted `registry.redb`: refused or decoded, never a
//! panic. Input: a selector byte, the 8-byte big-endian key, the value.
#![no_main]

use cds_server::fuzzing::{decode_logged_change, decode_stored_user};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let key = u64::from_be_bytes(data[1..9].try_into().expect("8 bytes"));
    let value = &data[9..];
    if data[0] & 1 == 0 {
        if let Some(user) = decode_stored_user(key, value) {
            assert_eq!(user.number.to_u64(), key);
            assert_eq!(user.label.as_bytes(), &value[1..]);
        }
    } else if let Some(change) = decode_logged_change(key, value) {
        assert_eq!(change.seq, key);
    }
});
