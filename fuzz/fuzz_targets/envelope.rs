//! The event envelope parser (what the dispatcher reads off the queue).
//! Properties: parsing never panics; an accepted envelope yields a delivery
//! body that is valid JSON carrying the same `id`, `type` and `subject` (and
//! `data` in full, none when thin), and its own serialization parses back to
//! the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::value::RawValue;
use shared::event::{Event, PayloadForm};

/// The delivery body's fields, exactly: a `tenant_id` or anything else fails.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DeliveryBody {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    timestamp: String,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    data: Option<Box<RawValue>>,
}

fuzz_target!(|data: &[u8]| {
    // Queue message bodies are text: SQS carries only valid Unicode.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(event) = Event::from_json(text) else {
        return;
    };

    // Valid JSON by the grammar (RFC 8259). `data` is the producer's text,
    // copied verbatim: numbers beyond f64's range are valid JSON, but a
    // `serde_json::Value` cannot hold them, so the body is read as raw values.
    let thin_body = event.delivery_body(PayloadForm::Thin);
    let thin: DeliveryBody = match serde_json::from_slice(&thin_body) {
        Ok(v) => v,
        Err(e) => panic!("thin delivery body is not JSON ({e}): {thin_body:?} for {text:?}"),
    };
    assert!(thin.data.is_none(), "a thin body carries data for {text:?}");
    assert_eq!(
        thin.subject.as_deref(),
        event.subject.as_ref().map(|s| s.as_str()),
        "thin body subject for {text:?}"
    );
    let body = event.delivery_body(PayloadForm::Full);
    let parsed: DeliveryBody = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => panic!("delivery body is not JSON ({e}): {body:?} for {text:?}"),
    };
    assert_eq!(
        parsed.subject, thin.subject,
        "delivery body subject for {text:?}"
    );
    let Some(data) = parsed.data else {
        panic!("a full body without data for {text:?}");
    };
    assert_eq!(
        parsed.id,
        event.id.as_str(),
        "delivery body id for {text:?}"
    );
    assert_eq!(
        parsed.event_type,
        event.event_type.as_str(),
        "delivery body type for {text:?}"
    );
    assert_eq!(
        data.get(),
        event.data.get(),
        "delivery body data for {text:?}"
    );
    assert!(
        data.get().starts_with('{'),
        "delivery body data is not an object for {text:?}"
    );

    let again = event.to_json();
    match Event::from_json(&again) {
        Ok(back) => assert_eq!(back, event, "round trip of {text:?} via {again:?}"),
        Err(e) => panic!("to_json output does not parse ({e:?}): {again:?} from {text:?}"),
    }
});
