//! The bounds an uploaded identity is held to, and the names its errors blame.

/// At most this many certificates in `certificate` (the leaf and its
/// intermediates) and in `ca`.
pub const MAX_CERTIFICATES: usize = 5;

/// At most this many bytes of PEM in `certificate`, and in `ca`.
pub const MAX_CERTIFICATE_PEM_BYTES: usize = 16 * 1024;

/// At most this many bytes of PEM in `private_key`.
pub const MAX_PRIVATE_KEY_PEM_BYTES: usize = 8 * 1024;

/// RSA keys: from 2048 bits (below is breakable) to 8192 (the most aws-lc-rs signs with).
pub(super) const MIN_RSA_BITS: usize = 2048;
pub(super) const MAX_RSA_BITS: usize = 8192;

/// The fields errors name.
pub(super) const CERTIFICATE_FIELD: &str = "client_tls.certificate";
pub(super) const PRIVATE_KEY_FIELD: &str = "client_tls.private_key";
pub(super) const CA_FIELD: &str = "client_tls.ca";

/// What servers commonly accept for client certificates, and what every
/// refusal of a key type suggests instead.
pub(super) const ACCEPTED_KEYS: &str = "use RSA (2048 bits or more) or ECDSA P-256/P-384";
