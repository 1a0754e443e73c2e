//! `GET /event-types`: the types of event a webhook may subscribe to.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde::Serialize;
use shared::EventType;

use crate::response;

#[derive(Serialize)]
struct EventTypeView {
    name: &'static str,
    description: &'static str,
}

#[derive(Serialize)]
struct EventTypeList {
    data: Vec<EventTypeView>,
}

/// Every event type, with what it means.
pub fn list() -> Response<Body> {
    let list = EventTypeList {
        data: EventType::ALL
            .iter()
            .map(|t| EventTypeView {
                name: t.as_str(),
                description: t.description(),
            })
            .collect(),
    };
    response::json(StatusCode::OK, &list)
}
