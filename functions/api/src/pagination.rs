//! `limit` and the opaque `cursor` of list endpoints.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::Request;
use shared::WebhookId;

use crate::ApiError;

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

pub struct PageRequest {
    pub limit: usize,
    pub after: Option<WebhookId>,
}

fn invalid(field: &str, message: String) -> ApiError {
    ApiError::Invalid {
        code: "invalid_value",
        field: Some(field.to_owned()),
        message,
    }
}

pub fn parse(req: &Request) -> Result<PageRequest, ApiError> {
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
            "cursor" => page.after = Some(decode_cursor(&value)?),
            _ => {}
        }
    }
    Ok(page)
}

pub fn encode_cursor(id: WebhookId) -> String {
    URL_SAFE_NO_PAD.encode(id.to_string())
}

fn decode_cursor(cursor: &str) -> Result<WebhookId, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            invalid(
                "cursor",
                "cursor: is not a cursor returned by this API (use next_cursor)".into(),
            )
        })
}
