//! The OpenAPI 3.1 document of this API, kept in `docs/openapi.json` and
//! compiled in. tests/openapi.rs checks it against [`crate::routes`] and
//! validates real responses against its schemas.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};

pub const OPENAPI_JSON: &str = include_str!("../../../docs/openapi.json");

pub fn document() -> Response<Body> {
    crate::response::json_text(StatusCode::OK, OPENAPI_JSON)
}
