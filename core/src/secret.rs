//! The traits every secret newtype has: constant-time equality and a
//! `Debug` that shows only the type's name.

/// Implement `ConstantTimeEq`, `PartialEq`, `Eq` (through the constant-time
/// comparison) and a redacted `Debug` for a tuple struct whose field
/// compares in constant time (a scalar, or a byte array as a slice).
macro_rules! secret_traits {
    ($name:ident) => {
        impl subtle::ConstantTimeEq for $name {
            fn ct_eq(&self, other: &Self) -> subtle::Choice {
                self.0.ct_eq(&other.0)
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                subtle::ConstantTimeEq::ct_eq(self, other).into()
            }
        }

        impl Eq for $name {}

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

pub(crate) use secret_traits;
