//! Standard Webhooks signatures (https://www.standardwebhooks.com/).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::{ValidationError, random};

const PREFIX: &str = "whsec_";

/// `whsec_` + base64 of the HMAC key. Only ever made by the platform.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SigningSecret(String);

impl SigningSecret {
    pub fn generate() -> Self {
        Self(format!("{PREFIX}{}", random::base64_32()))
    }

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let key = s.strip_prefix(PREFIX).map(|b64| STANDARD.decode(b64));
        match key {
            Some(Ok(bytes)) if !bytes.is_empty() => Ok(Self(s.to_owned())),
            _ => Err(ValidationError::new(
                "signing_secret",
                "must be whsec_ followed by base64",
            )),
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn masked(&self) -> String {
        crate::token::mask(&self.0)
    }

    fn key(&self) -> Vec<u8> {
        // Validated at construction.
        STANDARD.decode(&self.0[PREFIX.len()..]).unwrap_or_default()
    }

    /// `v1,` + base64(HMAC-SHA256(key, "{msg_id}.{timestamp}.{body}")).
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key()) {
            Ok(mac) => mac,
            Err(_) => return String::new(), // HMAC takes keys of any length.
        };
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// How far a `webhook-timestamp` may be from the receiver's clock: the
/// Standard Webhooks libraries' tolerance (replays older than this fail).
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 300;

/// Why a delivery's signature does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("bad webhook-timestamp")]
    BadTimestamp,
    #[error("webhook-timestamp is more than 5 minutes from now (a replay?)")]
    OutsideTolerance,
    #[error("no signature matches")]
    NoMatch,
}

impl SigningSecret {
    /// What a receiver does: the timestamp within the tolerance of `now`
    /// (Unix seconds), then one of the space-separated signatures equal to
    /// ours, compared in constant time.
    pub fn verify(
        &self,
        msg_id: &str,
        timestamp: &str,
        signatures: &str,
        body: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        let ts: i64 = timestamp.parse().map_err(|_| VerifyError::BadTimestamp)?;
        if now.abs_diff(ts) > TIMESTAMP_TOLERANCE_SECS.unsigned_abs() {
            return Err(VerifyError::OutsideTolerance);
        }
        let expected = self.sign(msg_id, ts, body);
        let matches = signatures
            .split(' ')
            .fold(subtle::Choice::from(0), |any, s| {
                any | subtle::ConstantTimeEq::ct_eq(s.as_bytes(), expected.as_bytes())
            });
        if bool::from(matches) {
            Ok(())
        } else {
            Err(VerifyError::NoMatch)
        }
    }
}

/// A replaced secret and the end of its overlap.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PreviousSecret {
    pub secret: SigningSecret,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: time::OffsetDateTime,
}

/// The `webhook-signature` value: one `v1,` signature per secret,
/// space-separated, as the Standard Webhooks specification allows during a rotation.
pub fn signature_header(
    secrets: &[&SigningSecret],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    if let [only] = secrets {
        return only.sign(msg_id, timestamp, body);
    }
    let mut header = String::new();
    for secret in secrets {
        if !header.is_empty() {
            header.push(' ');
        }
        header.push_str(&secret.sign(msg_id, timestamp, body));
    }
    header
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(****)")
    }
}

crate::validation::deserialize_via_parse!(SigningSecret);

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector published with the Standard Webhooks specification.
    #[test]
    fn standard_webhooks_test_vector() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn verification_checks_the_time_window_and_every_signature() {
        let secret = SigningSecret::generate();
        let other = SigningSecret::generate();
        let now = 1_764_000_000;
        let sig = secret.sign("evt_1", now, b"{}");
        let both = format!("{} {sig}", other.sign("evt_1", now, b"{}"));
        let ts = now.to_string();
        assert_eq!(secret.verify("evt_1", &ts, &sig, b"{}", now), Ok(()));
        assert_eq!(secret.verify("evt_1", &ts, &both, b"{}", now + 299), Ok(()));
        assert_eq!(
            secret.verify("evt_1", &ts, &sig, b"{ }", now),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            other.verify("evt_1", &ts, &sig, b"{}", now),
            Err(VerifyError::NoMatch)
        );
        // A replay: a valid signature, but from more than 5 minutes ago (or ahead).
        assert_eq!(
            secret.verify("evt_1", &ts, &sig, b"{}", now + 301),
            Err(VerifyError::OutsideTolerance)
        );
        assert_eq!(
            secret.verify("evt_1", &ts, &sig, b"{}", now - 301),
            Err(VerifyError::OutsideTolerance)
        );
        assert_eq!(
            secret.verify("evt_1", "soon", &sig, b"{}", now),
            Err(VerifyError::BadTimestamp)
        );
    }

    #[test]
    fn generated_secrets_parse_and_differ() {
        let a = SigningSecret::generate();
        assert!(a.expose().starts_with("whsec_"));
        assert_eq!(SigningSecret::parse(a.expose()).unwrap(), a);
        assert_ne!(a, SigningSecret::generate());
        assert_eq!(a.key().len(), 32);
        assert!(SigningSecret::parse("whsec_").is_err());
        assert!(SigningSecret::parse("secret").is_err());
        assert!(SigningSecret::parse("whsec_!!!").is_err());
        assert_eq!(format!("{a:?}"), "SigningSecret(****)");
    }
}
