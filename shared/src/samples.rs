//! One realistic `data` payload per event type: what "send a test event"
//! delivers, and the examples of the OpenAPI document (a test keeps the two equal).

use time::OffsetDateTime;

use crate::event::{Event, EventData, EventId};
use crate::{EventType, TenantId, ValidationError};

/// The sample `data` of `event_type`, as JSON text.
pub const fn data(event_type: EventType) -> &'static str {
    match event_type {
        EventType::AsyncCompleted => {
            r#"{"request_id":"req_01JDQ7Z3M6X9V2K8T4N5B1C0RE","operation":"id_verification","status":"completed","reference_id":"customer-4821","result":{"decision":"approved","document":{"type":"passport","issuing_country":"SGP","expiry_date":"2031-04-30"},"face_match":{"score":0.97,"matched":true},"liveness":{"passed":true,"score":0.99}},"completed_at":"2026-11-25T10:15:42Z"}"#
        }
        EventType::AsyncErrored => {
            r#"{"request_id":"req_01JDQ80A4H7K2M9P3R6T8V1W5X","operation":"id_verification","status":"errored","reference_id":"customer-4822","errors":[{"code":"document_unreadable","message":"The document image is too blurry to read.","field":"document.front_image"}],"errored_at":"2026-11-25T10:16:03Z"}"#
        }
        EventType::FlowxCompleted => {
            r#"{"flow_id":"flow_onboarding_retail","session_id":"ses_01JDQ81B5J8L3N0Q4S7U9W2Y6Z","reference_id":"customer-4821","stages":[{"name":"document","status":"completed"},{"name":"selfie","status":"completed"},{"name":"liveness","status":"completed"},{"name":"address","status":"completed"}],"decision":"approved","completed_at":"2026-11-25T10:21:17Z"}"#
        }
        EventType::FlowxErrored => {
            r#"{"flow_id":"flow_onboarding_retail","session_id":"ses_01JDQ82C6K9M4P1R5T8V0X3Z7A","reference_id":"customer-4823","stage":"selfie","error":{"kind":"user_data","code":"face_not_detected","message":"No face was detected in the selfie after 3 attempts."},"errored_at":"2026-11-25T10:24:51Z"}"#
        }
        EventType::FlowxSkipped => {
            r#"{"flow_id":"flow_onboarding_retail","session_id":"ses_01JDQ83D7M0N5Q2S6U9W1Y4A8B","reference_id":"customer-4824","skipped_at_stage":"document","skipped_at":"2026-11-25T10:27:09Z"}"#
        }
        EventType::FactxQuery => {
            r#"{"profile_id":"prof_01JDQ84E8N1P6R3T7V0X2Z5B9C","query_id":"qry_01JDQ85F9P2Q7S4U8W1Y3A6C0D","check":"employment","question":"Please confirm the applicant's employment dates at Acme Pte Ltd.","posted_by":"background_check_analyst","posted_at":"2026-11-25T10:30:44Z"}"#
        }
        EventType::WebhookFailing => {
            r#"{"webhook_id":"wh_01JDQ86G0Q3R8T5V9X2Z4B7D1E","url":"https://hooks.example.com/ekyc","failing_since":"2026-11-25T09:58:12Z","last_error":"timeout"}"#
        }
        EventType::WebhookDisabled => {
            r#"{"webhook_id":"wh_01JDQ86G0Q3R8T5V9X2Z4B7D1E","url":"https://hooks.example.com/ekyc","failing_since":"2026-11-20T09:58:12Z","last_error":"status 503","reason":"every attempt has failed since 2026-11-20T09:58:12Z; set the status to active to resume deliveries"}"#
        }
    }
}

/// A test event of `event_type` for `tenant`: a fresh id, the current time and the sample data.
pub fn event(tenant: TenantId, event_type: EventType) -> Result<Event, ValidationError> {
    Ok(Event {
        id: EventId::generate(),
        tenant_id: tenant,
        event_type,
        timestamp: OffsetDateTime::now_utc(),
        subject: None,
        data: EventData::from_json_text(data(event_type))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_is_a_json_object_that_names_its_subject() {
        for t in EventType::ALL {
            let value: serde_json::Value = serde_json::from_str(data(t)).unwrap();
            let object = value.as_object().unwrap();
            let subject = ["request_id", "session_id", "query_id", "webhook_id"];
            assert!(subject.iter().any(|k| object.contains_key(*k)), "{t}");
        }
    }

    #[test]
    fn a_sample_event_carries_the_sample_data_into_the_body() {
        let e = event(TenantId::parse("acme").unwrap(), EventType::FlowxSkipped).unwrap();
        let body: serde_json::Value =
            serde_json::from_slice(&e.delivery_body(crate::event::PayloadForm::Full)).unwrap();
        assert_eq!(body["type"], "flowx.skipped");
        assert_eq!(
            body["data"],
            serde_json::from_str::<serde_json::Value>(data(EventType::FlowxSkipped)).unwrap()
        );
    }
}
