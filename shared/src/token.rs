use serde::Serialize;

use crate::{ValidationError, random};

/// The secret a receiver checks in `Authorization: Basic <token>`. It goes into
/// a header verbatim, so only visible ASCII is allowed: no space, CR or LF.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    pub const MIN_LEN: usize = 16;
    pub const MAX_LEN: usize = 256;

    /// 32 bytes from the OS CSPRNG, base64.
    pub fn generate() -> Self {
        Self(random::base64_32())
    }

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let len = s.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(ValidationError::new(
                "token",
                format!(
                    "must be {} to {} characters long (got {len})",
                    Self::MIN_LEN,
                    Self::MAX_LEN
                ),
            ));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ValidationError::new(
                "token",
                "must contain only visible ASCII characters: no spaces, control characters or non-ASCII",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What reads show instead of the token.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

/// `****` and the last four characters (all of the input is ASCII here).
pub fn mask(secret: &str) -> String {
    let tail = secret.len().saturating_sub(4);
    format!("****{}", secret.get(tail..).unwrap_or(""))
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(****)")
    }
}

crate::validation::deserialize_via_parse!(Token);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_valid_and_distinct() {
        let a = Token::generate();
        let b = Token::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 44);
        assert!(Token::parse(a.expose()).is_ok());
    }

    #[test]
    fn length_bounds() {
        assert!(Token::parse(&"a".repeat(15)).is_err());
        assert!(Token::parse(&"a".repeat(16)).is_ok());
        assert!(Token::parse(&"a".repeat(256)).is_ok());
        let err = Token::parse(&"a".repeat(257)).unwrap_err();
        assert_eq!(err.field, "token");
        assert!(err.message.contains("257"));
    }

    #[test]
    fn only_visible_ascii() {
        for bad in [
            "abcdefgh ijklmnop",
            "abcdefghijklmnop\r\nX-Evil: 1",
            "abcdefghijklmnop\n",
            "abcdefghijklmnop\t",
            "abcdefghijklmnop\u{7f}",
            "abcdefghijklmnopé",
            "abcdefghijklmnop\0",
        ] {
            let err = Token::parse(bad).unwrap_err();
            assert_eq!(err.field, "token", "{bad:?}");
        }
        assert!(Token::parse("A-Za-z0-9+/=!~{}[]").is_ok());
    }

    #[test]
    fn masking_keeps_last_four() {
        let t = Token::parse("abcdefghijklmnopWXYZ").unwrap();
        assert_eq!(t.masked(), "****WXYZ");
        assert_eq!(format!("{t:?}"), "Token(****)");
        assert_eq!(mask("ab"), "****ab");
    }
}
