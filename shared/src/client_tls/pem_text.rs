//! Reading and writing the PEM of an uploaded identity, with refusals that
//! never quote what they refuse.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::limits::*;
use crate::ValidationError;

/// The labels of the PEM blocks in `text` (`CERTIFICATE` for
/// `-----BEGIN CERTIFICATE-----`), by the same line rule as the rustls PEM
/// reader, which skips blocks it does not know without saying so: this is
/// how a `PUBLIC KEY` or `ENCRYPTED PRIVATE KEY` block gets a clear refusal
/// instead of "nothing found".
pub(super) fn pem_labels(text: &str) -> Result<Vec<&str>, &'static str> {
    let mut labels = Vec::new();
    for line in text.split(['\n', '\r']) {
        let Some(rest) = line.strip_prefix("-----BEGIN ") else {
            continue;
        };
        match rest.trim_end_matches(' ').strip_suffix("-----") {
            Some(label) if !label.ends_with('-') => labels.push(label),
            _ => return Err("is not valid PEM: a -----BEGIN line is malformed"),
        }
    }
    Ok(labels)
}

/// Why the rustls PEM reader refused, in words that quote nothing: its own
/// messages can include a line of the input, which may be key material.
pub(super) fn pem_problem(error: &pem::Error) -> &'static str {
    match error {
        pem::Error::MissingSectionEnd { .. } => "is not valid PEM: a block has no -----END line",
        pem::Error::IllegalSectionStart { .. } => {
            "is not valid PEM: a -----BEGIN line is malformed"
        }
        pem::Error::Base64Decode(_) => "is not valid PEM: a block's base64 content is damaged",
        _ => "is not valid PEM",
    }
}

pub(super) fn is_private_key_label(label: &str) -> bool {
    label.ends_with("PRIVATE KEY")
}

/// Labels named back to the customer; anything else is "a block of an
/// unrecognised type", so a message never echoes arbitrary input.
pub(super) const KNOWN_LABELS: &[&str] = &[
    "TRUSTED CERTIFICATE",
    "PUBLIC KEY",
    "RSA PUBLIC KEY",
    "CERTIFICATE REQUEST",
    "NEW CERTIFICATE REQUEST",
    "X509 CRL",
    "PKCS7",
    "EC PARAMETERS",
];

/// Reads 1 to [`MAX_CERTIFICATES`] `CERTIFICATE` blocks, each a
/// well-formed X.509 certificate; `field` is blamed for any problem.
pub(super) fn read_certificates(
    field: &'static str,
    text: &str,
) -> Result<Vec<CertificateDer<'static>>, ValidationError> {
    let refuse = |message: String| ValidationError::new(field, message);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(refuse(
            "is empty: expected one or more PEM CERTIFICATE blocks".into(),
        ));
    }
    if text.len() > MAX_CERTIFICATE_PEM_BYTES {
        return Err(refuse(format!(
            "is {} bytes; at most {MAX_CERTIFICATE_PEM_BYTES} are accepted",
            text.len()
        )));
    }
    let labels = pem_labels(trimmed).map_err(|m| refuse(m.into()))?;
    if labels.is_empty() {
        return Err(refuse(
            "contains no PEM block: expected one or more PEM CERTIFICATE blocks \
             (-----BEGIN CERTIFICATE-----)"
                .into(),
        ));
    }
    for label in &labels {
        if *label == "CERTIFICATE" {
            continue;
        }
        let what = if is_private_key_label(label) {
            if field == CERTIFICATE_FIELD {
                "contains a private key; only CERTIFICATE blocks are accepted here \
                 (the key goes in client_tls.private_key)"
                    .to_owned()
            } else {
                "contains a private key; only CERTIFICATE blocks are accepted".to_owned()
            }
        } else if KNOWN_LABELS.contains(label) {
            format!("contains a {label} block; only CERTIFICATE blocks are accepted")
        } else {
            "contains a PEM block of an unrecognised type; only CERTIFICATE blocks are accepted"
                .to_owned()
        };
        return Err(refuse(what));
    }
    if labels.len() > MAX_CERTIFICATES {
        return Err(refuse(format!(
            "contains {} certificates; at most {MAX_CERTIFICATES} are accepted",
            labels.len()
        )));
    }
    let certs = CertificateDer::pem_slice_iter(trimmed.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| refuse(pem_problem(&e).into()))?;
    if certs.len() != labels.len() {
        // A BEGIN line inside an open block: the reader starts over silently.
        return Err(refuse(
            "is not valid PEM: every -----BEGIN line needs its own -----END line".into(),
        ));
    }
    let count = certs.len();
    for (i, cert) in certs.iter().enumerate() {
        let position = if count == 1 {
            "the certificate".to_owned()
        } else {
            format!("certificate {} of {count}", i + 1)
        };
        match X509Certificate::from_der(cert.as_ref()) {
            Ok(([], _)) => {}
            Ok(_) => {
                return Err(refuse(format!(
                    "{position} has extra bytes after the certificate"
                )));
            }
            Err(_) => {
                return Err(refuse(format!(
                    "{position} is not a valid X.509 certificate"
                )));
            }
        }
    }
    Ok(certs)
}

/// The CA certificates: the same reading as the chain, and each must be
/// accepted as a trust anchor, so `rustls_config` cannot fail on them later.
pub(super) fn read_ca(text: &str) -> Result<Vec<CertificateDer<'static>>, ValidationError> {
    let certs = read_certificates(CA_FIELD, text)?;
    let mut roots = rustls::RootCertStore::empty();
    let count = certs.len();
    for (i, cert) in certs.iter().enumerate() {
        if let Err(e) = roots.add(cert.clone()) {
            let position = if count == 1 {
                "the certificate".to_owned()
            } else {
                format!("certificate {} of {count}", i + 1)
            };
            return Err(ValidationError::new(
                CA_FIELD,
                format!("{position} cannot be used as a trusted CA ({e})"),
            ));
        }
    }
    Ok(certs)
}

/// Exactly one unencrypted private key. Messages never quote the input.
pub(super) fn read_private_key(text: &str) -> Result<PrivateKeyDer<'static>, ValidationError> {
    let refuse = |message: &str| ValidationError::new(PRIVATE_KEY_FIELD, message.to_owned());
    const ENCRYPTED: &str = "is encrypted; the key must be unencrypted \
         (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY): decrypt it first, \
         e.g. with `openssl pkey`";
    const EXPECTED: &str = "expected one unencrypted PEM private key \
         (a PRIVATE KEY block, PKCS#8; RSA PRIVATE KEY and EC PRIVATE KEY are accepted too)";

    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(refuse(&format!("is empty: {EXPECTED}")));
    }
    if text.len() > MAX_PRIVATE_KEY_PEM_BYTES {
        return Err(ValidationError::new(
            PRIVATE_KEY_FIELD,
            format!(
                "is {} bytes; at most {MAX_PRIVATE_KEY_PEM_BYTES} are accepted",
                text.len()
            ),
        ));
    }
    let labels = pem_labels(trimmed).map_err(refuse)?;
    let mut keys = 0;
    for label in labels {
        match label {
            "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" => keys += 1,
            // `openssl ecparam -genkey` writes the curve before the key; the
            // key names its curve again, so the block is dropped.
            "EC PARAMETERS" => {}
            "ENCRYPTED PRIVATE KEY" => return Err(refuse(ENCRYPTED)),
            "CERTIFICATE" => {
                return Err(refuse(
                    "contains a certificate; only the private key goes here \
                     (the certificate goes in client_tls.certificate)",
                ));
            }
            "OPENSSH PRIVATE KEY" => {
                return Err(refuse(
                    "is in OpenSSH format, which is not accepted: convert it to PKCS#8 \
                     (a PRIVATE KEY block), e.g. with `ssh-keygen -p -m PKCS8`",
                ));
            }
            "DSA PRIVATE KEY" => {
                return Err(refuse(&format!(
                    "is a DSA key, which is not accepted: {ACCEPTED_KEYS}"
                )));
            }
            "PUBLIC KEY" | "RSA PUBLIC KEY" => {
                return Err(refuse("contains a public key; the private key is needed"));
            }
            _ => {
                return Err(refuse(&format!(
                    "contains a PEM block that is not a private key: {EXPECTED}"
                )));
            }
        }
    }
    // Traditional OpenSSL encryption keeps the RSA/EC label and adds headers.
    if trimmed.lines().any(|line| {
        let line = line.trim_start();
        (line.starts_with("Proc-Type:") && line.contains("ENCRYPTED"))
            || line.starts_with("DEK-Info:")
    }) {
        return Err(refuse(ENCRYPTED));
    }
    match keys {
        0 => return Err(refuse(&format!("contains no private key: {EXPECTED}"))),
        1 => {}
        n => {
            return Err(ValidationError::new(
                PRIVATE_KEY_FIELD,
                format!("contains {n} private keys; exactly one is expected"),
            ));
        }
    }
    let found = PrivateKeyDer::pem_slice_iter(trimmed.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| refuse(pem_problem(&e)))?;
    match <[PrivateKeyDer<'static>; 1]>::try_from(found) {
        Ok([key]) => Ok(key),
        Err(_) => Err(refuse(
            "is not valid PEM: every -----BEGIN line needs its own -----END line",
        )),
    }
}

/// PEM with 64-character lines, one block per item: what is stored.
pub(super) fn encode_pem(out: &mut String, label: &str, der: &[u8]) {
    let encoded = STANDARD.encode(der);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    let mut rest = encoded.as_str();
    while !rest.is_empty() {
        // Base64 is ASCII: every index is a character boundary.
        let (line, tail) = rest.split_at_checked(64).unwrap_or((rest, ""));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
}

pub(super) fn encode_certificates(certs: &[CertificateDer<'static>]) -> String {
    let mut out = String::new();
    for cert in certs {
        encode_pem(&mut out, "CERTIFICATE", cert.as_ref());
    }
    out
}

pub(super) fn encode_private_key(key: &PrivateKeyDer<'_>) -> String {
    let label = match key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    let mut out = String::new();
    encode_pem(&mut out, label, key.secret_der());
    out
}
