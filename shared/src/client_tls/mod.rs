//! A webhook's client identity for mutual TLS: a certificate chain and its
//! private key (PEM), and optionally the certificate authority to trust for
//! that endpoint. Checked once, when uploaded; presented by the delivery
//! client, which builds one TLS configuration per identity per container.

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};
use x509_parser::certificate::X509Certificate;
use x509_parser::objects::oid_registry;
use x509_parser::prelude::FromDer;

use crate::ValidationError;

mod key;
mod limits;
mod pem_text;

use key::*;
use limits::*;
pub use limits::{MAX_CERTIFICATE_PEM_BYTES, MAX_CERTIFICATES, MAX_PRIVATE_KEY_PEM_BYTES};
use pem_text::*;

/// What a customer uploads (`client_tls` on POST and PATCH).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsInput {
    pub certificate: String,
    pub private_key: String,
    #[serde(default)]
    pub ca: Option<String>,
}

impl fmt::Debug for ClientTlsInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTlsInput")
            .field("private_key", &"****")
            .finish_non_exhaustive()
    }
}

/// The private key in PEM: never shown, never in `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PrivateKeyPem(String);

impl PrivateKeyPem {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKeyPem(****)")
    }
}

/// A checked identity, as stored on the webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientTls {
    /// The chain in PEM, leaf first.
    pub certificate: String,
    pub private_key: PrivateKeyPem,
    /// Trusted for this endpoint instead of the public roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// SHA-256 of the leaf certificate (DER), lowercase hex.
    pub fingerprint: String,
    /// SHA-256 of the first CA certificate (DER), lowercase hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_fingerprint: Option<String>,
    /// The leaf's subject, as text.
    pub subject: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
}

/// What every read shows of an identity: never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientTlsView {
    pub fingerprint: String,
    pub subject: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_fingerprint: Option<String>,
}

impl ClientTls {
    /// Checks an upload at `now`; the error names the part to blame
    /// (`client_tls.certificate`, `client_tls.private_key`, `client_tls.ca`)
    /// and never quotes key material.
    ///
    /// The certificate is checked first, then the key against it, then the
    /// CA: the first problem found is the one reported.
    pub fn parse(input: &ClientTlsInput, now: OffsetDateTime) -> Result<Self, ValidationError> {
        let chain = read_certificates(CERTIFICATE_FIELD, &input.certificate)?;
        let leaf_der = chain.first().ok_or_else(|| {
            // read_certificates refuses an empty list; kept as an error, not a panic.
            ValidationError::new(CERTIFICATE_FIELD, "contains no certificate")
        })?;
        let (_, leaf) = X509Certificate::from_der(leaf_der.as_ref()).map_err(|_| {
            ValidationError::new(CERTIFICATE_FIELD, "is not a valid X.509 certificate")
        })?;

        let not_before = leaf
            .validity()
            .not_before
            .to_datetime()
            .to_offset(UtcOffset::UTC);
        let not_after = leaf
            .validity()
            .not_after
            .to_datetime()
            .to_offset(UtcOffset::UTC);
        if now < not_before {
            return Err(ValidationError::new(
                CERTIFICATE_FIELD,
                format!(
                    "the client certificate is not valid yet: it becomes valid at {}",
                    rfc3339(not_before)
                ),
            ));
        }
        // RFC 5280 counts notAfter itself as valid; refusing it too costs a
        // second and keeps `now < not_after` the one rule everywhere.
        if now >= not_after {
            return Err(ValidationError::new(
                CERTIFICATE_FIELD,
                format!("the client certificate expired at {}", rfc3339(not_after)),
            ));
        }

        let spki = leaf.public_key();
        let key_kind = leaf_key_kind(spki)
            .map_err(|problem| ValidationError::new(CERTIFICATE_FIELD, problem))?;
        let subject = leaf
            .subject()
            .to_string_with_registry(oid_registry())
            .map_err(|_| {
                ValidationError::new(
                    CERTIFICATE_FIELD,
                    "the client certificate's subject name cannot be read",
                )
            })?;

        let key = read_private_key(&input.private_key)?;
        check_key_matches(
            &chain,
            &key,
            key_kind,
            spki.subject_public_key.data.as_ref(),
        )?;

        let ca = match &input.ca {
            None => None,
            Some(text) => Some(read_ca(text)?),
        };

        Ok(Self {
            certificate: encode_certificates(&chain),
            private_key: PrivateKeyPem(encode_private_key(&key)),
            ca_fingerprint: ca
                .as_ref()
                .and_then(|c| c.first())
                .map(|c| sha256_hex(c.as_ref())),
            ca: ca.as_deref().map(encode_certificates),
            fingerprint: sha256_hex(leaf_der.as_ref()),
            subject,
            not_after,
        })
    }

    /// A TLS configuration that presents this identity and trusts `ca` when
    /// set, `default_roots` otherwise.
    ///
    /// The endpoint's CA replaces the public roots rather than adding to
    /// them: a customer who pins a private CA does not want a publicly
    /// trusted certificate for the same name to be accepted. ALPN is left to
    /// hyper-rustls, which sets it from the HTTP versions it enables.
    pub fn rustls_config(
        &self,
        default_roots: &rustls::RootCertStore,
    ) -> Result<rustls::ClientConfig, rustls::Error> {
        // The stored text passed `parse`; these errors mean a damaged record.
        // They never carry the PEM parser's message, which can quote a line.
        let chain = CertificateDer::pem_slice_iter(self.certificate.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| stored_damaged(CERTIFICATE_FIELD))?;
        if chain.is_empty() {
            return Err(stored_damaged(CERTIFICATE_FIELD));
        }
        let key = PrivateKeyDer::from_pem_slice(self.private_key.expose().as_bytes())
            .map_err(|_| stored_damaged(PRIVATE_KEY_FIELD))?;
        let roots = match &self.ca {
            None => default_roots.clone(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                    roots.add(cert.map_err(|_| stored_damaged(CA_FIELD))?)?;
                }
                if roots.is_empty() {
                    return Err(stored_damaged(CA_FIELD));
                }
                roots
            }
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
    }

    /// What reads show.
    pub fn view(&self) -> ClientTlsView {
        ClientTlsView {
            fingerprint: self.fingerprint.clone(),
            subject: self.subject.clone(),
            not_after: self.not_after,
            ca_fingerprint: self.ca_fingerprint.clone(),
        }
    }

    /// What a read warns of at `now`: a certificate that has expired, or
    /// expires within [`EXPIRY_NOTICE`] (time to upload its successor).
    pub fn warning(&self, now: OffsetDateTime) -> Option<&'static str> {
        if self.not_after <= now {
            Some(EXPIRED_WARNING)
        } else if self.not_after - now <= EXPIRY_NOTICE {
            Some(EXPIRING_WARNING)
        } else {
            None
        }
    }
}

/// How long before its expiry reads warn of a client certificate.
pub const EXPIRY_NOTICE: time::Duration = time::Duration::days(30);
pub const EXPIRING_WARNING: &str =
    "client_tls: the client certificate expires within 30 days: upload its successor before then";
pub const EXPIRED_WARNING: &str = "client_tls: the client certificate has expired: a receiver that requires it refuses every delivery";

fn stored_damaged(field: &str) -> rustls::Error {
    rustls::Error::General(format!("{field}: the stored PEM cannot be read"))
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

/// SHA-256 of `der`, lowercase hex without separators.
fn sha256_hex(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    out
}

#[cfg(test)]
mod tests;
