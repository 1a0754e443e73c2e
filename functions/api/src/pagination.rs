//! `limit` and the opaque `cursor` of list endpoints.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::Request;

use crate::ApiError;

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

pub struct PageRequest<C> {
    pub limit: usize,
    pub after: Option<C>,
}

fn invalid(field: &str, message: String) -> ApiError {
    ApiError::Invalid {
        code: "invalid_value",
        field: Some(field.to_owned()),
        message,
    }
}

/// Reads `limit` and `cursor`; `position` turns a decoded cursor back into a
/// position in the list, and refuses what this API did not hand out.
pub fn parse<C>(
    req: &Request,
    position: impl Fn(String) -> Option<C>,
) -> Result<PageRequest<C>, ApiError> {
    let mut page = PageRequest {
        limit: DEFAULT_LIMIT,
        after: None,
    };
    let query = req.uri().query().unwrap_or("");
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "limit" => {
                page.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        invalid(
                            "limit",
                            format!(
                                "limit: must be an integer from 1 to {MAX_LIMIT} (got {value:?})"
                            ),
                        )
                    })?;
            }
            "cursor" => {
                let decoded = URL_SAFE_NO_PAD
                    .decode(value.as_bytes())
                    .ok()
                    .and_then(|raw| String::from_utf8(raw).ok())
                    .and_then(&position);
                page.after = Some(decoded.ok_or_else(|| {
                    invalid(
                        "cursor",
                        "cursor: is not a cursor returned by this API (use next_cursor)".into(),
                    )
                })?);
            }
            _ => {}
        }
    }
    Ok(page)
}

pub fn encode_cursor(position: impl std::fmt::Display) -> String {
    URL_SAFE_NO_PAD.encode(position.to_string())
}
