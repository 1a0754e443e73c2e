//! Secrets come from the operating system's CSPRNG, never from a userspace PRNG.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// 32 random bytes from the OS. Failure means the OS has no entropy source,
/// which no caller can recover from.
pub fn bytes32() -> [u8; 32] {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).expect("the operating system's random source failed");
    buf
}

/// Standard base64 (with padding) of 32 random bytes: 44 characters.
pub fn base64_32() -> String {
    STANDARD.encode(bytes32())
}

/// URL-safe base64 without padding of 32 random bytes: 43 characters.
pub fn base64url_32() -> String {
    URL_SAFE_NO_PAD.encode(bytes32())
}

/// A number in [0, 1), for jitter.
pub fn fraction() -> f64 {
    let bytes = bytes32();
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    (u64::from_le_bytes(word) >> 11) as f64 / (1u64 << 53) as f64
}

/// Waits `base_ms` plus a random part of `spread_ms`: the pause before a
/// write that lost a race is tried again, so that the racers part.
pub async fn pause(base_ms: u64, spread_ms: u64) {
    let jitter = (fraction() * spread_ms as f64) as u64;
    tokio::time::sleep(std::time::Duration::from_millis(base_ms + jitter)).await;
}
