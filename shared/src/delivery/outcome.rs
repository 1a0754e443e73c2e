use serde::{Deserialize, Serialize};

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The receiver answered 2xx.
    Delivered,
    /// The receiver answered, with neither 2xx nor 3xx.
    HttpError,
    /// No response head within the deadline.
    Timeout,
    /// Name resolution, connection, or the exchange itself failed.
    ConnectError,
    /// The TLS handshake failed (certificate, protocol).
    TlsError,
    /// The target resolved to an address the SSRF rule forbids; nothing was sent.
    Blocked,
    /// The receiver answered 3xx; redirects are not followed.
    Redirect,
    /// The response head was larger than the client reads (16 KiB, or 64
    /// headers); nothing of it is kept.
    ResponseTooLarge,
    /// The OAuth2 access token could not be had (token endpoint unreachable,
    /// credentials refused, no token in its answer); nothing was sent.
    TokenError,
}

impl Outcome {
    pub const ALL: [Outcome; 9] = [
        Outcome::Delivered,
        Outcome::HttpError,
        Outcome::Timeout,
        Outcome::ConnectError,
        Outcome::TlsError,
        Outcome::Blocked,
        Outcome::Redirect,
        Outcome::ResponseTooLarge,
        Outcome::TokenError,
    ];

    /// The outcome its name (`as_str`) names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::HttpError => "http_error",
            Outcome::Timeout => "timeout",
            Outcome::ConnectError => "connect_error",
            Outcome::TlsError => "tls_error",
            Outcome::Blocked => "blocked",
            Outcome::Redirect => "redirect",
            Outcome::ResponseTooLarge => "response_too_large",
            Outcome::TokenError => "token_error",
        }
    }
}

/// The result of one attempt, as the delivery log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub outcome: Outcome,
    pub status: Option<u16>,
    pub duration_ms: u64,
    /// The first bytes of the response body (at most [`Attempt::EXCERPT_BYTES`]).
    pub response_excerpt: Option<String>,
    /// `Location` of a 3xx.
    pub location: Option<String>,
    /// Why a failed attempt failed, in a few words (never a URL or a secret).
    pub error: Option<String>,
    /// The receiver's `Retry-After` on a 429 or 503.
    pub retry_after: Option<std::time::Duration>,
}

impl Attempt {
    pub const EXCERPT_BYTES: usize = 1024;

    /// An attempt with only an outcome, a status and a duration (records
    /// built by hand: tests, benchmarks).
    pub fn bare(outcome: Outcome, status: Option<u16>, duration_ms: u64) -> Self {
        Self {
            outcome,
            status,
            duration_ms,
            response_excerpt: None,
            location: None,
            error: None,
            retry_after: None,
        }
    }
}

/// The first `max` bytes of `raw` as text, cut on a character boundary.
pub(crate) fn excerpt(raw: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&raw[..raw.len().min(max)]);
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_bounded_and_valid_text() {
        assert_eq!(excerpt(b"hello", 1024), "hello");
        assert_eq!(excerpt(&[b'a'; 5000], 1024).len(), 1024);
        let accented = "é".repeat(600);
        let cut = excerpt(accented.as_bytes(), 1023);
        assert!(cut.len() <= 1023 && cut.chars().all(|c| c == 'é'));
        assert_eq!(
            serde_json::to_string(&Outcome::HttpError).unwrap(),
            "\"http_error\""
        );
    }
}
