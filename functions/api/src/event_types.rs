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
    /// What the platform's jobs produce.
    data: Vec<EventTypeView>,
    /// What the platform says about the tenant's own webhooks.
    notices: Vec<EventTypeView>,
}

fn views(types: &[EventType]) -> Vec<EventTypeView> {
    types
        .iter()
        .map(|t| EventTypeView {
            name: t.as_str(),
            description: t.description(),
        })
        .collect()
}

/// Every event type, with what it means: the job events, and apart from
/// them the notices about webhooks.
pub fn list() -> Response<Body> {
    let list = EventTypeList {
        data: views(&EventType::JOBS),
        notices: views(&EventType::NOTICES),
    };
    response::json(StatusCode::OK, &list)
}
