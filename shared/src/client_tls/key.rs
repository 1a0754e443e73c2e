//! The leaf's key: which kinds are accepted, and that the uploaded private
//! key is the certificate's.

use std::sync::Arc;

use rustls::InconsistentKeys;
use rustls::SignatureScheme;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, alg_id};
use rustls::sign::{CertifiedKey, SigningKey};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_DSA, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_PKCS1_RSASSAPSS, OID_SIG_ED448, OID_SIG_ED25519,
};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::limits::*;
use crate::ValidationError;

/// The key types accepted for the leaf; what the proof of possession signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LeafKey {
    Rsa,
    EcdsaP256,
    EcdsaP384,
}

/// Bits in a big-endian unsigned integer, leading zero bytes (the DER sign
/// byte) ignored. x509-parser's own `key_size` assumes a sign byte is there.
pub(super) fn integer_bits(bytes: &[u8]) -> usize {
    let significant = match bytes.iter().position(|b| *b != 0) {
        Some(first) => &bytes[first..],
        None => return 0,
    };
    let top_bits = (8 - significant[0].leading_zeros()) as usize;
    (significant.len() - 1) * 8 + top_bits
}

/// The leaf's key type, or what to tell the customer about it.
pub(super) fn leaf_key_kind(spki: &SubjectPublicKeyInfo<'_>) -> Result<LeafKey, String> {
    let algorithm = &spki.algorithm.algorithm;
    if *algorithm == OID_PKCS1_RSAENCRYPTION {
        let Ok(PublicKey::RSA(rsa)) = spki.parsed() else {
            return Err("the client certificate's RSA public key is malformed".into());
        };
        let bits = integer_bits(rsa.modulus);
        if bits < MIN_RSA_BITS {
            return Err(format!(
                "the client certificate's public key is an RSA key of {bits} bits; \
                 RSA keys must have at least {MIN_RSA_BITS} bits"
            ));
        }
        // aws-lc-rs signs with RSA keys of up to 8192 bits.
        if bits > MAX_RSA_BITS {
            return Err(format!(
                "the client certificate's public key is an RSA key of {bits} bits; \
                 RSA keys of more than {MAX_RSA_BITS} bits are not accepted"
            ));
        }
        return Ok(LeafKey::Rsa);
    }
    if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        return match curve {
            Some(c) if c == OID_EC_P256 => Ok(LeafKey::EcdsaP256),
            Some(c) if c == OID_NIST_EC_P384 => Ok(LeafKey::EcdsaP384),
            Some(c) if c == OID_NIST_EC_P521 => Err(format!(
                "ECDSA P-521 keys are not accepted: {ACCEPTED_KEYS}"
            )),
            Some(c) => Err(format!(
                "the client certificate's public key is on an unsupported elliptic curve \
                 ({c}): {ACCEPTED_KEYS}"
            )),
            None => Err(format!(
                "the client certificate's elliptic-curve key does not name its curve: \
                 {ACCEPTED_KEYS}"
            )),
        };
    }
    let named = if *algorithm == OID_SIG_ED25519 {
        "Ed25519 keys are not accepted".to_owned()
    } else if *algorithm == OID_SIG_ED448 {
        "Ed448 keys are not accepted".to_owned()
    } else if *algorithm == OID_PKCS1_RSASSAPSS {
        "RSA-PSS keys (id-RSASSA-PSS) are not accepted".to_owned()
    } else if *algorithm == OID_KEY_TYPE_DSA {
        "DSA keys are not accepted".to_owned()
    } else {
        format!("the client certificate's key type ({algorithm}) is not accepted")
    };
    Err(format!("{named}: {ACCEPTED_KEYS}"))
}

pub(super) fn key_mismatch() -> ValidationError {
    ValidationError::new(
        PRIVATE_KEY_FIELD,
        "does not match the certificate's public key",
    )
}

/// Loads the key as the delivery client will, then checks it belongs to
/// the leaf: by comparing public keys when the provider can derive one,
/// by a signature the leaf's key verifies otherwise.
pub(super) fn check_key_matches(
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    kind: LeafKey,
    leaf_public_key: &[u8],
) -> Result<(), ValidationError> {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    // The provider's error says nothing useful to a customer and is not
    // worth the risk of quoting: a fixed message instead.
    let signing_key = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|_| {
            ValidationError::new(
                PRIVATE_KEY_FIELD,
                format!("cannot be loaded as a private key: {ACCEPTED_KEYS}"),
            )
        })?;
    match CertifiedKey::new(chain.to_vec(), Arc::clone(&signing_key)).keys_match() {
        Ok(()) => Ok(()),
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => Err(key_mismatch()),
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {
            if proves_possession(signing_key.as_ref(), kind, leaf_public_key) {
                Ok(())
            } else {
                Err(key_mismatch())
            }
        }
        // The leaf parsed with x509-parser but not with webpki, which is
        // what rustls will use: refuse it now rather than at delivery.
        Err(e) => Err(ValidationError::new(
            CERTIFICATE_FIELD,
            format!("the client certificate cannot be used for TLS ({e})"),
        )),
    }
}

/// Whether `key` signs a fixed message so that the leaf's public key
/// (`public_key`, the subjectPublicKey bits) verifies it: for keys whose
/// public half the provider cannot derive.
pub(super) fn proves_possession(key: &dyn SigningKey, kind: LeafKey, public_key: &[u8]) -> bool {
    const MESSAGE: &[u8] = b"webhooks client_tls proof of possession";
    let (schemes, key_algorithm): (&[SignatureScheme], _) = match kind {
        LeafKey::Rsa => (
            &[
                SignatureScheme::RSA_PSS_SHA256,
                SignatureScheme::RSA_PKCS1_SHA256,
            ],
            alg_id::RSA_ENCRYPTION,
        ),
        LeafKey::EcdsaP256 => (
            &[SignatureScheme::ECDSA_NISTP256_SHA256],
            alg_id::ECDSA_P256,
        ),
        LeafKey::EcdsaP384 => (
            &[SignatureScheme::ECDSA_NISTP384_SHA384],
            alg_id::ECDSA_P384,
        ),
    };
    let Some(signer) = key.choose_scheme(schemes) else {
        // The key cannot sign for the leaf's key type: not its pair.
        return false;
    };
    let Ok(signature) = signer.sign(MESSAGE) else {
        return false;
    };
    let scheme = signer.scheme();
    rustls::crypto::aws_lc_rs::default_provider()
        .signature_verification_algorithms
        .mapping
        .iter()
        .filter(|(s, _)| *s == scheme)
        .flat_map(|(_, algorithms)| algorithms.iter())
        .filter(|a| a.public_key_alg_id() == key_algorithm)
        .any(|a| a.verify_signature(public_key, MESSAGE, &signature).is_ok())
}
