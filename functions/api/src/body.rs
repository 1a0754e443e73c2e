//! Request bodies: size and media type first, then JSON into a typed request,
//! with errors that name the field to blame.

use lambda_http::Request;
use lambda_http::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use crate::{ApiError, MAX_BODY_BYTES};

fn bytes(req: &Request) -> &[u8] {
    req.body().as_ref()
}

fn is_json(req: &Request) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// Parses a required JSON body.
pub fn json<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let raw = bytes(req);
    if raw.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    if !is_json(req) {
        return Err(ApiError::UnsupportedMediaType);
    }
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MalformedJson(
            "the request body is empty; expected a JSON object".into(),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(raw);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // A field error in a body that is not even JSON is reported as malformed JSON.
        match serde_json::from_slice::<serde::de::IgnoredAny>(raw) {
            Err(syntax) => ApiError::MalformedJson(format!("malformed JSON: {syntax}")),
            Ok(_) => classify(e),
        }
    })?;
    de.end()
        .map_err(|e| ApiError::MalformedJson(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// Requires that a request meant to have no body has none.
pub fn none(req: &Request) -> Result<(), ApiError> {
    let raw = bytes(req);
    if raw.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    if raw.iter().all(u8::is_ascii_whitespace) || (is_json(req) && raw.trim_ascii() == b"{}") {
        return Ok(());
    }
    Err(ApiError::Invalid {
        code: "unexpected_body",
        field: None,
        message: "this operation takes no request body".into(),
    })
}

fn classify(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    use serde_json::error::Category;
    let path = e.path().to_string();
    let inner = e.into_inner();
    if !matches!(inner.classify(), Category::Data) {
        return ApiError::MalformedJson(format!("malformed JSON: {inner}"));
    }
    let full = inner.to_string();
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
    ApiError::Invalid {
        code,
        field,
        message,
    }
}

/// `unknown field `x`, expected ...` names the field between the first backticks.
fn backticked(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}

/// `events[2]` is blamed on `events`.
fn top_level(path: &str) -> String {
    path.split(['[', '.']).next().unwrap_or(path).to_owned()
}
