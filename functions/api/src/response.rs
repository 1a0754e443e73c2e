use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;

pub fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    match serde_json::to_string(value) {
        Ok(text) => build(status, Body::Text(text), Some("application/json")),
        Err(_) => build(
            StatusCode::INTERNAL_SERVER_ERROR,
            Body::Text(r#"{"error":{"code":"internal_error","message":"internal error"}}"#.into()),
            Some("application/json"),
        ),
    }
}

pub fn empty(status: StatusCode) -> Response<Body> {
    build(status, Body::Empty, None)
}

fn build(status: StatusCode, body: Body, content_type: Option<&'static str>) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(ct));
    }
    response
}

/// JSON text that is already serialized (the OpenAPI document).
pub fn json_text(status: StatusCode, text: &'static str) -> Response<Body> {
    build(
        status,
        Body::Text(text.to_owned()),
        Some("application/json"),
    )
}
