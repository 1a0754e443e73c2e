//! A webhook's OAuth2 client credentials (RFC 6749 §4.4), for receivers
//! behind a gateway that wants `Authorization: Bearer` instead of the
//! platform's Basic token. Checked once, when the webhook is written; the
//! delivery client fetches and reuses the access token
//! ([`crate::delivery`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::token::mask;
use crate::{UrlPolicy, ValidationError, WebhookUrl};

/// Longest `client_id`, in characters.
pub const MAX_CLIENT_ID: usize = 256;
/// Longest `client_secret`, in characters.
pub const MAX_CLIENT_SECRET: usize = 1024;
/// Longest `scope`, in characters.
pub const MAX_SCOPE: usize = 1024;

/// How the client authenticates to the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// HTTP Basic with the client id and secret (every server must support it).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// The client secret: never shown in full after it is written, never in `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientSecret(String);

impl ClientSecret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// As every read shows it (as the token is; nothing of a short one).
    pub fn masked(&self) -> String {
        if self.0.len() >= 12 {
            mask(&self.0)
        } else {
            "****".to_owned()
        }
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(****)")
    }
}

/// Checked client credentials, as stored on the webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuth2 {
    /// The token endpoint: https, under the same SSRF rule as a webhook's URL.
    pub token_url: WebhookUrl,
    pub client_id: String,
    pub client_secret: ClientSecret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default)]
    pub auth_method: AuthMethod,
}

/// `oauth2` as a request gives it. On a change, a missing `client_secret`
/// keeps the one held, as long as `token_url` stays the same (a secret is
/// never sent to an endpoint it was not given for).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Input {
    pub token_url: String,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub auth_method: Option<AuthMethod>,
}

impl fmt::Debug for OAuth2Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Input")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// What every read shows: the secret masked.
#[derive(Debug, Serialize)]
pub struct OAuth2View<'a> {
    pub token_url: &'a str,
    pub client_id: &'a str,
    pub client_secret: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<&'a str>,
    pub auth_method: AuthMethod,
}

impl OAuth2 {
    /// Checks `input`, keeping the secret of `held` when none is given and
    /// the token endpoint is the same. Errors name `oauth2.<field>`.
    pub fn resolve(
        input: &OAuth2Input,
        held: Option<&OAuth2>,
        policy: UrlPolicy,
    ) -> Result<Self, ValidationError> {
        let token_url = WebhookUrl::parse(&input.token_url, policy)
            .map_err(|e| ValidationError::new("oauth2.token_url", e.message))?;
        if token_url.as_url().scheme() != "https" {
            return Err(ValidationError::new(
                "oauth2.token_url",
                "must use https: the client secret travels in the request",
            ));
        }
        let client_id = visible("oauth2.client_id", &input.client_id, MAX_CLIENT_ID)?;
        let client_secret = match (&input.client_secret, held) {
            (Some(secret), _) => {
                ClientSecret(visible("oauth2.client_secret", secret, MAX_CLIENT_SECRET)?)
            }
            (None, Some(held)) if held.token_url == token_url => held.client_secret.clone(),
            (None, Some(_)) => {
                return Err(ValidationError::new(
                    "oauth2.client_secret",
                    "is required when token_url changes: the secret held is only sent to the endpoint it was given for",
                ));
            }
            (None, None) => {
                return Err(ValidationError::new("oauth2.client_secret", "is required"));
            }
        };
        let scope = input.scope.as_deref().map(parse_scope).transpose()?;
        Ok(Self {
            token_url,
            client_id,
            client_secret,
            scope,
            auth_method: input.auth_method.unwrap_or_default(),
        })
    }

    pub fn view(&self) -> OAuth2View<'_> {
        OAuth2View {
            token_url: self.token_url.as_str(),
            client_id: &self.client_id,
            client_secret: self.client_secret.masked(),
            scope: self.scope.as_deref(),
            auth_method: self.auth_method,
        }
    }
}

/// 1 to `max` characters of visible ASCII or space (RFC 6749's VSCHAR).
fn visible(field: &'static str, s: &str, max: usize) -> Result<String, ValidationError> {
    if s.is_empty() || s.len() > max {
        return Err(ValidationError::new(
            field,
            format!("must be 1 to {max} characters (got {})", s.len()),
        ));
    }
    if !s.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(ValidationError::new(
            field,
            "must be printable ASCII (RFC 6749 allows no other character)",
        ));
    }
    Ok(s.to_owned())
}

/// Scope tokens separated by single spaces (RFC 6749 §3.3: NQCHAR, no `"` or `\`).
fn parse_scope(s: &str) -> Result<String, ValidationError> {
    let field = "oauth2.scope";
    if s.is_empty() || s.len() > MAX_SCOPE {
        return Err(ValidationError::new(
            field,
            format!("must be 1 to {MAX_SCOPE} characters (got {})", s.len()),
        ));
    }
    let nqchar = |b: u8| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b);
    if !s.split(' ').all(|t| !t.is_empty() && t.bytes().all(nqchar)) {
        return Err(ValidationError::new(
            field,
            "must be scope tokens separated by single spaces (printable ASCII without '\"' or '\\')",
        ));
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW: UrlPolicy = UrlPolicy {
        allow_private_targets: false,
    };

    fn input(secret: Option<&str>) -> OAuth2Input {
        OAuth2Input {
            token_url: "https://auth.example.com/oauth/token".into(),
            client_id: "webhooks-relay".into(),
            client_secret: secret.map(str::to_owned),
            scope: Some("webhooks:write events".into()),
            auth_method: None,
        }
    }

    #[test]
    fn a_complete_input_is_kept_and_its_secret_masked() {
        let o = OAuth2::resolve(&input(Some("s3cr3t-value-0123456789")), None, ALLOW).unwrap();
        assert_eq!(o.auth_method, AuthMethod::ClientSecretBasic);
        assert_eq!(o.client_secret.expose(), "s3cr3t-value-0123456789");
        let view = serde_json::to_string(&o.view()).unwrap();
        assert!(view.contains("\"client_secret\":\"****6789\""), "{view}");
        assert!(!view.contains("s3cr3t"));
        assert!(!format!("{o:?}").contains("s3cr3t"));
        assert!(!format!("{:?}", input(Some("s3cr3t-x"))).contains("s3cr3t"));
        let short = OAuth2::resolve(&input(Some("short")), None, ALLOW).unwrap();
        assert_eq!(short.view().client_secret, "****");
    }

    #[test]
    fn a_missing_secret_is_kept_only_for_the_same_token_endpoint() {
        let held = OAuth2::resolve(&input(Some("held-secret-0123")), None, ALLOW).unwrap();
        let kept = OAuth2::resolve(&input(None), Some(&held), ALLOW).unwrap();
        assert_eq!(kept.client_secret.expose(), "held-secret-0123");
        let moved = OAuth2Input {
            token_url: "https://elsewhere.example.net/token".into(),
            ..input(None)
        };
        let err = OAuth2::resolve(&moved, Some(&held), ALLOW).unwrap_err();
        assert_eq!(err.field, "oauth2.client_secret");
        let err = OAuth2::resolve(&input(None), None, ALLOW).unwrap_err();
        assert_eq!(err.field, "oauth2.client_secret");
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (
                OAuth2Input {
                    token_url: "http://auth.example.com/token".into(),
                    ..input(Some("x"))
                },
                "oauth2.token_url",
            ),
            (
                OAuth2Input {
                    token_url: "https://10.0.0.1/token".into(),
                    ..input(Some("x"))
                },
                "oauth2.token_url",
            ),
            (
                OAuth2Input {
                    token_url: "not a url".into(),
                    ..input(Some("x"))
                },
                "oauth2.token_url",
            ),
            (
                OAuth2Input {
                    client_id: String::new(),
                    ..input(Some("x"))
                },
                "oauth2.client_id",
            ),
            (
                OAuth2Input {
                    client_id: "tab\there".into(),
                    ..input(Some("x"))
                },
                "oauth2.client_id",
            ),
            (input(Some("")), "oauth2.client_secret"),
            (
                input(Some(&"x".repeat(MAX_CLIENT_SECRET + 1))),
                "oauth2.client_secret",
            ),
            (
                OAuth2Input {
                    scope: Some("a  b".into()),
                    ..input(Some("x"))
                },
                "oauth2.scope",
            ),
            (
                OAuth2Input {
                    scope: Some("quote\"d".into()),
                    ..input(Some("x"))
                },
                "oauth2.scope",
            ),
        ];
        for (bad, field) in cases {
            let err = OAuth2::resolve(&bad, None, ALLOW).unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
        let unknown = serde_json::from_str::<OAuth2Input>(
            r#"{"token_url":"https://a.example/t","client_id":"i","grant":"x"}"#,
        );
        assert!(unknown.is_err());
        let method = serde_json::from_str::<OAuth2Input>(
            r#"{"token_url":"https://a.example/t","client_id":"i","auth_method":"private_key_jwt"}"#,
        );
        assert!(method.is_err());
    }
}
