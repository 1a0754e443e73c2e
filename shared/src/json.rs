//! Strict JSON into typed values, with errors that name the field to blame.
//! Used for API request bodies and for event envelopes on the queue.

use serde::de::DeserializeOwned;

/// Why a JSON document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not JSON at all (or trailing garbage after the value).
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// Well-formed JSON whose content is wrong.
    #[error("{message}")]
    Field {
        /// `missing_field`, `unknown_field`, `invalid_type` or `invalid_value`.
        code: &'static str,
        field: Option<String>,
        message: String,
    },
}

pub fn from_slice<T: DeserializeOwned>(raw: &[u8]) -> Result<T, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // A field error in a document that is not even JSON is reported as malformed.
        match serde_json::from_slice::<serde::de::IgnoredAny>(raw) {
            Err(syntax) => JsonError::Malformed(syntax.to_string()),
            Ok(_) => classify(e),
        }
    })?;
    de.end().map_err(|e| JsonError::Malformed(e.to_string()))?;
    Ok(value)
}

fn classify(e: serde_path_to_error::Error<serde_json::Error>) -> JsonError {
    let path = e.path().to_string();
    let full = e.into_inner().to_string();
    // serde_json appends the position; the field name says more.
    let message = full
        .rfind(" at line ")
        .map_or(full.as_str(), |i| &full[..i]);
    let named = backticked(message);
    let (code, field) = if message.starts_with("unknown field") {
        ("unknown_field", named)
    } else if message.starts_with("missing field") {
        ("missing_field", named)
    } else if message.starts_with("invalid type") || message.starts_with("invalid length") {
        ("invalid_type", None)
    } else {
        ("invalid_value", None)
    };
    let field = field.or_else(|| (path != ".").then(|| top_level(&path)));
    let message = match &field {
        Some(f) if code != "unknown_field" && code != "missing_field" => format!("{f}: {message}"),
        _ => message.to_owned(),
    };
    JsonError::Field {
        code,
        field,
        message,
    }
}

/// "unknown field `x`, expected ..." names the field between the first backticks.
fn backticked(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}

/// `events[2]` is blamed on `events`.
fn top_level(path: &str) -> String {
    path.split(['[', '.']).next().unwrap_or(path).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        name: String,
        tags: Vec<u8>,
    }

    fn field_error(raw: &str) -> (&'static str, Option<String>) {
        match from_slice::<Doc>(raw.as_bytes()) {
            Err(JsonError::Field { code, field, .. }) => (code, field),
            other => panic!("{raw}: {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            field_error(r#"{"tags":[]}"#),
            ("missing_field", Some("name".into()))
        );
        assert_eq!(
            field_error(r#"{"name":"a","tags":[],"x":1}"#),
            ("unknown_field", Some("x".into()))
        );
        assert_eq!(
            field_error(r#"{"name":1,"tags":[]}"#),
            ("invalid_type", Some("name".into()))
        );
        assert_eq!(
            field_error(r#"{"name":"a","tags":[1,300]}"#),
            ("invalid_value", Some("tags".into()))
        );
        assert_eq!(field_error("[]"), ("invalid_type", None));
        assert!(from_slice::<Doc>(br#"{"name":"a","tags":[]}"#).is_ok());
    }

    #[test]
    fn malformed_documents() {
        for raw in ["", "{", r#"{"name":"a","tags":[]} x"#, "{} trailing"] {
            assert!(
                matches!(
                    from_slice::<Doc>(raw.as_bytes()),
                    Err(JsonError::Malformed(_))
                ),
                "{raw}"
            );
        }
    }
}
