use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde::Serialize;
use shared::ValidationError;
use shared::key_lifecycle::KeyError;
use shared::store::{Allowance, StoreError};

/// Every way a request can fail. Mapped to status and JSON in [`ApiError::into_response`] only.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    MalformedJson(String),
    /// A field is missing, unknown, of the wrong type or has an invalid value.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        field: Option<String>,
        message: String,
    },
    #[error("a valid API key is required: send Authorization: Bearer <api key>")]
    Unauthorized,
    #[error("this API key has been revoked: use another key of the tenant's")]
    KeyRevoked,
    #[error("this API key has expired: use another key of the tenant's")]
    KeyExpired,
    #[error("this API key has the read scope: it may call GET routes only")]
    InsufficientScope,
    #[error("no API key with this id")]
    ApiKeyNotFound,
    /// A tenant may not revoke its last active full-scope key.
    #[error("{0}")]
    LastFullKey(String),
    #[error("the tenant already has {0} active API keys; revoke one first")]
    KeyLimit(usize),
    #[error("no webhook with this id")]
    WebhookNotFound,
    #[error("no event with this id (events are kept for a limited time)")]
    EventNotFound,
    #[error("no delivery with this id for this webhook")]
    DeliveryNotFound,
    /// Why: too large to keep, never kept, or past the tenant's retention.
    #[error("the event's data {0}, so it cannot be sent again")]
    PayloadNotKept(&'static str),
    #[error("the event's data was deleted, so it cannot be sent again")]
    PayloadDeleted,
    #[error(
        "the webhook is inactive: set its status to active first (a recovery sends to it at once)"
    )]
    WebhookInactive,
    /// One recovery at a time per webhook.
    #[error(
        "recovery {recovery_id} of this webhook is running (since {since}, until {until}); GET /webhooks/{{id}}/recovery follows it"
    )]
    RecoveryRunning {
        recovery_id: String,
        since: String,
        until: String,
    },
    #[error("this webhook has no recovery (a recovery's state is kept 7 days)")]
    RecoveryNotFound,
    #[error("redelivery is not available: no events queue is configured")]
    QueueUnavailable,
    /// The tenant's allowance for this window (redeliveries per minute,
    /// test events per 10 s) is spent.
    #[error("{}", limit_message(*.allowance, *.limit, *.asked, *.retry_after))]
    LimitReached {
        allowance: Allowance,
        limit: u32,
        asked: u32,
        retry_after: u64,
    },
    /// The tenant's requests per second in this container, or a client
    /// address's requests with keys not seen here, are spent.
    #[error(
        "too many requests at once from this tenant or client address; try again in {retry_after} s"
    )]
    RateLimited { retry_after: u64 },
    /// Behind the edge, a request that did not come through it.
    #[error(
        "this API is served through its edge address: call that address, not API Gateway's own"
    )]
    NotThroughEdge,
    /// A signing-secret rotation while the previous secret still signs.
    #[error(
        "the previous signing secret still signs until {until}; rotate again after that (a second rotation now would drop it while receivers may still use it)"
    )]
    RotationInProgress { until: String },
    #[error("no route for {0}")]
    RouteNotFound(String),
    #[error("method not allowed; allowed: {0}")]
    MethodNotAllowed(String),
    #[error("the request body is larger than {} bytes", crate::MAX_BODY_BYTES)]
    PayloadTooLarge,
    #[error("the request body must be JSON: send Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("the tenant already has the maximum of {0} webhooks; delete one first")]
    WebhookLimit(u32),
    #[error("the webhook kept changing while this request tried to update it; try again")]
    Conflict,
    /// Details are logged with the request id, never returned.
    #[error("internal error")]
    Internal(String),
}

fn limit_message(allowance: Allowance, limit: u32, asked: u32, retry_after: u64) -> String {
    match allowance {
        Allowance::Redeliveries => format!(
            "this call would queue {asked} redelivery attempt(s), more than are left of the tenant's {limit} per minute; try again in {retry_after} s"
        ),
        Allowance::TestEvents => format!(
            "the tenant has sent its {limit} test events of the last 10 seconds; try again in {retry_after} s"
        ),
        Allowance::RecoveryChecks => format!(
            "the tenant's recoveries have checked the {limit} events they may check per minute (a call checks up to {asked}); try again in {retry_after} s"
        ),
        Allowance::CostlyReads => format!(
            "the tenant has made its {limit} costly reads of this minute (stats, listings filtered by value); try again in {retry_after} s"
        ),
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        let message = e.to_string();
        ApiError::Invalid {
            code: "invalid_value",
            field: Some(e.field.into_owned()),
            message,
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::NotFound => ApiError::ApiKeyNotFound,
            KeyError::LastFullKey => ApiError::LastFullKey(e.to_string()),
            KeyError::Limit(n) => ApiError::KeyLimit(n),
            KeyError::Store(e) => ApiError::Internal(e.to_string()),
            // Rotation is the operator's (the CLI), not a route.
            KeyError::NotActive(_) => ApiError::Internal(e.to_string()),
        }
    }
}

/// A store error where the caller did not say what a `NotFound` would be
/// missing: the calls that can find nothing name it with
/// [`IfMissing::if_missing`], so a `NotFound` here is unexpected (500).
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::LimitReached { limit } => ApiError::WebhookLimit(limit),
            StoreError::Conflict => ApiError::Conflict,
            StoreError::NotFound => {
                ApiError::Internal("the store found nothing where the caller expected it".into())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Says what a store call did not find.
pub trait IfMissing<T> {
    /// `missing` when the store answers `NotFound` (a webhook deleted
    /// meanwhile: [`ApiError::WebhookNotFound`]); other errors as usual.
    fn if_missing(self, missing: ApiError) -> Result<T, ApiError>;
}

impl<T> IfMissing<T> for Result<T, StoreError> {
    fn if_missing(self, missing: ApiError) -> Result<T, ApiError> {
        self.map_err(|e| match e {
            StoreError::NotFound => missing,
            other => other.into(),
        })
    }
}

impl ApiError {
    /// A query parameter or body field with a value this API does not take:
    /// 400 `invalid_value`, naming `field`.
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            code: "invalid_value",
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            ApiError::Invalid { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::KeyRevoked => (StatusCode::UNAUTHORIZED, "api_key_revoked"),
            ApiError::KeyExpired => (StatusCode::UNAUTHORIZED, "api_key_expired"),
            ApiError::InsufficientScope => (StatusCode::FORBIDDEN, "insufficient_scope"),
            ApiError::ApiKeyNotFound => (StatusCode::NOT_FOUND, "api_key_not_found"),
            ApiError::LastFullKey(_) => (StatusCode::CONFLICT, "last_full_key"),
            ApiError::KeyLimit(_) => (StatusCode::CONFLICT, "api_key_limit_reached"),
            ApiError::WebhookNotFound => (StatusCode::NOT_FOUND, "webhook_not_found"),
            ApiError::EventNotFound => (StatusCode::NOT_FOUND, "event_not_found"),
            ApiError::DeliveryNotFound => (StatusCode::NOT_FOUND, "delivery_not_found"),
            ApiError::PayloadNotKept(_) => (StatusCode::CONFLICT, "payload_not_kept"),
            ApiError::PayloadDeleted => (StatusCode::CONFLICT, "payload_deleted"),
            ApiError::WebhookInactive => (StatusCode::CONFLICT, "webhook_inactive"),
            ApiError::RecoveryRunning { .. } => (StatusCode::CONFLICT, "recovery_running"),
            ApiError::RecoveryNotFound => (StatusCode::NOT_FOUND, "recovery_not_found"),
            ApiError::QueueUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "queue_unavailable"),
            ApiError::LimitReached { allowance, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                match allowance {
                    Allowance::Redeliveries => "redelivery_limit_reached",
                    Allowance::TestEvents => "test_event_limit_reached",
                    Allowance::RecoveryChecks => "recovery_limit_reached",
                    Allowance::CostlyReads => "read_limit_reached",
                },
            ),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::NotThroughEdge => (StatusCode::FORBIDDEN, "not_through_edge"),
            ApiError::RouteNotFound(_) => (StatusCode::NOT_FOUND, "route_not_found"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::WebhookLimit(_) => (StatusCode::CONFLICT, "webhook_limit_reached"),
            ApiError::Conflict => (StatusCode::CONFLICT, "concurrent_update"),
            ApiError::RotationInProgress { .. } => (StatusCode::CONFLICT, "rotation_in_progress"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }

    pub fn into_response(self, request_id: &str) -> Response<Body> {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(detail) = &self {
            tracing::error!(request_id, error = %detail, "request failed");
        }
        let field = match &self {
            ApiError::Invalid { field, .. } => field.as_deref(),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
                field,
                request_id: matches!(self, ApiError::Internal(_)).then_some(request_id),
            },
        };
        let mut response = crate::response::json(status, &body);
        if let ApiError::MethodNotAllowed(allow) = &self
            && let Ok(value) = lambda_http::http::HeaderValue::from_str(allow)
        {
            response
                .headers_mut()
                .insert(lambda_http::http::header::ALLOW, value);
        }
        if let ApiError::LimitReached { retry_after, .. } | ApiError::RateLimited { retry_after } =
            self
        {
            response.headers_mut().insert(
                lambda_http::http::header::RETRY_AFTER,
                lambda_http::http::HeaderValue::from(retry_after),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                lambda_http::http::header::WWW_AUTHENTICATE,
                lambda_http::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of every variant (and every code `Invalid` takes): a new error
    /// code must be added to the OpenAPI document's `Error` schema, or
    /// schemathesis finds the answer off-schema (it did, twice).
    #[test]
    fn every_code_is_in_the_openapi_document() {
        let doc: serde_json::Value = serde_json::from_str(crate::OPENAPI_JSON).unwrap();
        let documented: Vec<&str> = doc["components"]["schemas"]["Error"]["properties"]["error"]
            ["properties"]["code"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c.as_str())
            .collect();
        let invalid = |code| ApiError::Invalid {
            code,
            field: None,
            message: String::new(),
        };
        let limit = |allowance| ApiError::LimitReached {
            allowance,
            limit: 1,
            asked: 2,
            retry_after: 1,
        };
        let every = [
            ApiError::MalformedJson(String::new()),
            invalid("missing_field"),
            invalid("unknown_field"),
            invalid("invalid_type"),
            invalid("invalid_value"),
            invalid("unexpected_body"),
            ApiError::Unauthorized,
            ApiError::KeyRevoked,
            ApiError::KeyExpired,
            ApiError::InsufficientScope,
            ApiError::ApiKeyNotFound,
            ApiError::LastFullKey(String::new()),
            ApiError::KeyLimit(1),
            ApiError::WebhookNotFound,
            ApiError::EventNotFound,
            ApiError::DeliveryNotFound,
            ApiError::PayloadNotKept(""),
            ApiError::PayloadDeleted,
            ApiError::WebhookInactive,
            ApiError::RecoveryRunning {
                recovery_id: String::new(),
                since: String::new(),
                until: String::new(),
            },
            ApiError::RecoveryNotFound,
            ApiError::QueueUnavailable,
            limit(Allowance::Redeliveries),
            limit(Allowance::TestEvents),
            limit(Allowance::RecoveryChecks),
            limit(Allowance::CostlyReads),
            ApiError::RateLimited { retry_after: 1 },
            ApiError::NotThroughEdge,
            ApiError::RotationInProgress {
                until: String::new(),
            },
            ApiError::RouteNotFound(String::new()),
            ApiError::MethodNotAllowed("GET".into()),
            ApiError::PayloadTooLarge,
            ApiError::UnsupportedMediaType,
            ApiError::WebhookLimit(1),
            ApiError::Conflict,
            ApiError::Internal(String::new()),
        ];
        for e in &every {
            let (_, code) = e.status_and_code();
            assert!(
                documented.contains(&code),
                "{code} is not in docs/openapi.json"
            );
        }
    }
}
