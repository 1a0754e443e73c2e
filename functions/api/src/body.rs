//! Request bodies: size and media type first, then JSON into a typed request,
//! with errors that name the field to blame.

use lambda_http::Request;
use lambda_http::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use shared::json::JsonError;

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
    shared::json::from_slice(raw).map_err(|e| match e {
        JsonError::Malformed(m) => ApiError::MalformedJson(format!("malformed JSON: {m}")),
        JsonError::Field {
            code,
            field,
            message,
        } => ApiError::Invalid {
            code,
            field,
            message,
        },
    })
}

/// No body, or only whitespace.
pub fn is_empty(req: &Request) -> bool {
    bytes(req).iter().all(u8::is_ascii_whitespace)
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
