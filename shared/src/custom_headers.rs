//! A webhook's own headers: what a receiver behind a gateway needs besides
//! the Basic token (an API gateway's key, a routing header). Checked once,
//! when the webhook is written; sent with every delivery and test event.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::ValidationError;
use crate::token::mask;

/// Most headers a webhook may hold.
pub const MAX_HEADERS: usize = 10;
/// Longest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024;
/// Longest name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// Names the platform sets itself, or that belong to the connection: a
/// custom header may not replace or smuggle them.
const RESERVED: [&str; 13] = [
    "authorization",
    "host",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "expect",
];

/// Prefixes of names the platform owns (`content-*` describes the body it
/// signs; `webhook-*` are the signature's headers).
const RESERVED_PREFIXES: [&str; 2] = ["content-", "webhook-"];

/// One header: its name as given, its value, and whether the value is a
/// secret (shown masked, as the token is, and marked sensitive when sent).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomHeader {
    pub name: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
}

impl fmt::Debug for CustomHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomHeader")
            .field("name", &self.name)
            .field("value", &self.shown_value())
            .field("secret", &self.secret)
            .finish()
    }
}

impl CustomHeader {
    /// The value as every read shows it: a secret masked as the token is
    /// (its last four characters, and only when it has at least 12, so
    /// that a short one shows nothing).
    pub fn shown_value(&self) -> String {
        match (self.secret, self.value.len()) {
            (false, _) => self.value.clone(),
            (true, 12..) => mask(&self.value),
            (true, _) => "****".to_owned(),
        }
    }
}

/// A header as a change gives it: without a value, the one held is kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderChange {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub secret: bool,
}

/// A webhook's headers, checked: at most [`MAX_HEADERS`], names unique
/// (case-insensitively) and not reserved, values of visible ASCII.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct CustomHeaders(Vec<CustomHeader>);

impl CustomHeaders {
    pub fn new(headers: Vec<CustomHeader>) -> Result<Self, ValidationError> {
        if headers.len() > MAX_HEADERS {
            return Err(ValidationError::new(
                "headers",
                format!("at most {MAX_HEADERS} headers (got {})", headers.len()),
            ));
        }
        for (i, h) in headers.iter().enumerate() {
            check_name(i, &h.name)?;
            check_value(i, h)?;
            let again = headers[..i]
                .iter()
                .any(|earlier| earlier.name.eq_ignore_ascii_case(&h.name));
            if again {
                return Err(ValidationError::new(
                    format!("headers[{i}].name"),
                    format!("{:?} is given twice (names are case-insensitive)", h.name),
                ));
            }
        }
        Ok(Self(headers))
    }

    /// A change's list: each header as given, but one given without a
    /// value keeps the value held under its name (so that a client that
    /// was only ever shown a secret masked can keep it).
    pub fn resolve(
        change: Vec<HeaderChange>,
        held: &CustomHeaders,
    ) -> Result<Self, ValidationError> {
        let mut headers = Vec::with_capacity(change.len());
        for (i, h) in change.into_iter().enumerate() {
            let value = match h.value {
                Some(v) => v,
                None => held
                    .iter()
                    .find(|kept| kept.name.eq_ignore_ascii_case(&h.name))
                    .map(|kept| kept.value.clone())
                    .ok_or_else(|| {
                        ValidationError::new(
                            format!("headers[{i}].value"),
                            format!(
                                "required: the webhook holds no header {:?} whose value could be kept",
                                h.name
                            ),
                        )
                    })?,
            };
            headers.push(CustomHeader {
                name: h.name,
                value,
                secret: h.secret,
            });
        }
        Self::new(headers)
    }

    pub fn iter(&self) -> impl Iterator<Item = &CustomHeader> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|h| h.name.as_str()).collect()
    }
}

impl<'de> Deserialize<'de> for CustomHeaders {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let headers = Vec::<CustomHeader>::deserialize(d)?;
        Self::new(headers)
            .map_err(|e| serde::de::Error::custom(format!("{}: {}", e.field, e.message)))
    }
}

/// An HTTP token (RFC 9110 `tchar`s), not one the platform sets.
fn check_name(i: usize, name: &str) -> Result<(), ValidationError> {
    let field = || format!("headers[{i}].name");
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || name.len() > MAX_NAME_BYTES || !name.chars().all(tchar) {
        return Err(ValidationError::new(
            field(),
            format!(
                "{name:?} is not a header name: 1 to {MAX_NAME_BYTES} letters, digits or !#$%&'*+-.^_`|~"
            ),
        ));
    }
    let lower = name.to_ascii_lowercase();
    let reserved = RESERVED.contains(&lower.as_str())
        || RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p));
    if reserved {
        return Err(ValidationError::new(
            field(),
            format!(
                "{name:?} is set by the platform or the connection, and cannot be replaced \
                 (Authorization, Host, User-Agent, Content-*, Webhook-* and hop-by-hop headers)"
            ),
        ));
    }
    Ok(())
}

/// Visible ASCII and spaces inside, at most [`MAX_VALUE_BYTES`].
fn check_value(i: usize, h: &CustomHeader) -> Result<(), ValidationError> {
    let v = &h.value;
    let visible = v.bytes().all(|b| (0x20..=0x7e).contains(&b));
    let padded = v.starts_with(' ') || v.ends_with(' ');
    if v.is_empty() || v.len() > MAX_VALUE_BYTES || !visible || padded {
        return Err(ValidationError::new(
            format!("headers[{i}].value"),
            format!(
                "the value of {:?} must be 1 to {MAX_VALUE_BYTES} bytes of visible ASCII (spaces only inside)",
                h.name
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, value: &str) -> Result<CustomHeaders, ValidationError> {
        CustomHeaders::new(vec![CustomHeader {
            name: name.into(),
            value: value.into(),
            secret: false,
        }])
    }

    #[test]
    fn a_gateways_headers_are_taken_as_given() {
        let ok = one("X-Gateway-Key", "abc 123/=").unwrap();
        assert_eq!(ok.names(), ["X-Gateway-Key"]);
        assert!(one("x-api-key", &"a".repeat(MAX_VALUE_BYTES)).is_ok());
    }

    #[test]
    fn reserved_names_are_refused_by_name() {
        for name in [
            "Authorization",
            "host",
            "Content-Type",
            "content-length",
            "Webhook-Signature",
            "webhook-id",
            "Transfer-Encoding",
            "Connection",
            "User-Agent",
        ] {
            let e = one(name, "x").unwrap_err();
            assert_eq!(e.field, "headers[0].name", "{name}");
            assert!(e.message.contains(name), "{name}: {}", e.message);
        }
    }

    #[test]
    fn bad_names_values_counts_and_repeats_are_refused() {
        assert!(one("", "x").is_err());
        assert!(one("X Bad", "x").is_err());
        assert!(one("X-Ünicode", "x").is_err());
        assert!(one(&"x".repeat(MAX_NAME_BYTES + 1), "x").is_err());
        let value = |v: &str| one("X-A", v).unwrap_err().field;
        assert_eq!(value(""), "headers[0].value");
        assert_eq!(value("line\r\nInjected: 1"), "headers[0].value");
        assert_eq!(value("é"), "headers[0].value");
        assert_eq!(value(" padded"), "headers[0].value");
        assert_eq!(value(&"a".repeat(MAX_VALUE_BYTES + 1)), "headers[0].value");
        let h = |name: &str| CustomHeader {
            name: name.into(),
            value: "v".into(),
            secret: false,
        };
        let twice = CustomHeaders::new(vec![h("X-A"), h("x-a")]).unwrap_err();
        assert_eq!(twice.field, "headers[1].name");
        let many = (0..=MAX_HEADERS).map(|i| h(&format!("X-{i}"))).collect();
        assert_eq!(CustomHeaders::new(many).unwrap_err().field, "headers");
    }

    #[test]
    fn a_secret_value_is_masked_wherever_it_is_shown() {
        let h = CustomHeader {
            name: "X-Key".into(),
            value: "s3cr3t-value-ABCD".into(),
            secret: true,
        };
        assert_eq!(h.shown_value(), "****ABCD");
        assert!(!format!("{h:?}").contains("s3cr3t"));
        let short = CustomHeader {
            value: "abc".into(),
            ..h.clone()
        };
        assert_eq!(short.shown_value(), "****");
        let plain = CustomHeader { secret: false, ..h };
        assert_eq!(plain.shown_value(), "s3cr3t-value-ABCD");
    }

    #[test]
    fn a_change_without_a_value_keeps_the_one_held_and_only_that() {
        let held = CustomHeaders::new(vec![CustomHeader {
            name: "X-Key".into(),
            value: "kept-secret-value".into(),
            secret: true,
        }])
        .unwrap();
        let change = |name: &str, value: Option<&str>| HeaderChange {
            name: name.into(),
            value: value.map(str::to_owned),
            secret: true,
        };
        let kept = CustomHeaders::resolve(vec![change("x-key", None)], &held).unwrap();
        assert_eq!(kept.iter().next().unwrap().value, "kept-secret-value");
        let new = CustomHeaders::resolve(vec![change("X-Key", Some("new-value"))], &held).unwrap();
        assert_eq!(new.iter().next().unwrap().value, "new-value");
        let e = CustomHeaders::resolve(vec![change("X-Other", None)], &held).unwrap_err();
        assert_eq!(e.field, "headers[0].value");
        assert!(e.message.contains("X-Other"), "{}", e.message);
        // A kept value still passes every check of its name.
        let renamed = CustomHeaders::resolve(vec![change("Host", Some("x"))], &held);
        assert!(renamed.is_err());
    }

    #[test]
    fn json_is_checked_on_the_way_in() {
        let e = serde_json::from_str::<CustomHeaders>(r#"[{"name": "Host", "value": "x"}]"#)
            .unwrap_err();
        assert!(e.to_string().contains("headers[0].name"), "{e}");
        let ok: CustomHeaders =
            serde_json::from_str(r#"[{"name": "X-A", "value": "1", "secret": true}]"#).unwrap();
        assert!(ok.iter().all(|h| h.secret));
    }
}
