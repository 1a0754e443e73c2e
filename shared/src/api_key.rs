//! API keys: random, shown once, stored only as SHA-256 hashes.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::random;

/// The prefix makes a leaked key easy to recognise (secret scanners).
pub const PREFIX: &str = "whk_";

/// A fresh key: `whk_` + base64url of 32 random bytes.
pub fn generate() -> String {
    format!("{PREFIX}{}", random::base64url_32())
}

/// The SHA-256 of a key, lowercase hex: what the table stores and looks up.
pub fn hash(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    out
}

/// Compares two hashes without leaking, through timing, where they differ.
pub fn hashes_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_hash_stably() {
        let a = generate();
        assert!(a.starts_with(PREFIX));
        assert_eq!(a.len(), PREFIX.len() + 43);
        assert_ne!(a, generate());
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(hashes_match(&hash(&a), &hash(&a)));
        assert!(!hashes_match(&hash(&a), &hash("other")));
        assert!(!hashes_match("ab", "abc"));
    }
}
