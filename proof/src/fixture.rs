//! The fixed population: tenants, their webhooks (mixed subscriptions, some
//! inactive, receivers of each kind) and the events, all deterministic.

use std::collections::HashMap;
use std::net::SocketAddr;

use serde_json::json;
use shared::emit::NewEvent;
use shared::event::Event;
use shared::signing::SigningSecret;
use shared::{EventType, Status, TenantId, Token, Webhook, WebhookId};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::receivers::Kind;

pub const TENANTS: usize = 20;
pub const WEBHOOKS_PER_TENANT: usize = 5;

/// One stored webhook and what the harness knows about it.
pub struct Hook {
    pub webhook: Webhook,
    pub kind: Kind,
}

/// Tenant `i` of the run.
pub fn tenant(run: &str, i: usize) -> String {
    format!("proof-{run}-t{i:02}")
}

/// The 100 webhooks: global index g = tenant × 5 + position.
/// - inactive: g % 7 == 4 (14 of them);
/// - g 17 hangs (subscribed to factx.query only), g 42 is slow (flowx.skipped
///   and async.errored), g 23 and g 61 turn slow mid-run and recover (their
///   webhooks flip between the lanes), g % 4 == 1 answers 500, the rest 200;
/// - the others subscribe to 1 to 6 consecutive types from a rotating start.
pub fn webhooks(run: &str, addrs: &HashMap<Kind, SocketAddr>) -> Result<Vec<Hook>, String> {
    let mut hooks = Vec::new();
    let now = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .map_err(|e| e.to_string())?;
    for t in 0..TENANTS {
        for w in 0..WEBHOOKS_PER_TENANT {
            let g = t * WEBHOOKS_PER_TENANT + w;
            let (kind, events): (Kind, Vec<EventType>) = match g {
                17 => (Kind::Hang, vec![EventType::FactxQuery]),
                42 => (
                    Kind::Slow,
                    vec![EventType::FlowxSkipped, EventType::AsyncErrored],
                ),
                // Every type: enough attempts on each side of the flips.
                23 | 61 => (Kind::Flip, EventType::JOBS.to_vec()),
                _ => {
                    let n = 1 + (g * 7) % 6;
                    let start = g % 6;
                    let events = (0..n).map(|k| EventType::JOBS[(start + k) % 6]).collect();
                    let kind = if g % 4 == 1 { Kind::Error } else { Kind::Ok };
                    (kind, events)
                }
            };
            let status = if g % 7 == 4 {
                Status::Inactive
            } else {
                Status::Active
            };
            let id = WebhookId::generate();
            let addr = addrs.get(&kind).ok_or("no receiver for a kind")?;
            // Through serde, as the store reads it: fields added to
            // `Webhook` later take their stored defaults.
            let webhook: Webhook = serde_json::from_value(json!({
                "id": id,
                "tenant_id": TenantId::parse(&tenant(run, t)).map_err(|e| e.to_string())?,
                "url": format!("http://{addr}/hooks/{id}"),
                "events": events.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
                "status": status,
                "token": Token::generate().expose(),
                "signing_secret": SigningSecret::generate().expose(),
                "created_at": now,
                "updated_at": now,
            }))
            .map_err(|e| format!("building a webhook: {e}"))?;
            hooks.push(Hook { webhook, kind });
        }
    }
    Ok(hooks)
}

/// SplitMix64: a fixed sequence with no dependency.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `n` events spread over the tenants and the six types.
pub fn events(run: &str, n: usize) -> Result<Vec<Event>, String> {
    (0..n)
        .map(|i| {
            let x = mix(i as u64);
            let t = (x % TENANTS as u64) as usize;
            let ty = EventType::JOBS[((x >> 16) % 6) as usize];
            NewEvent {
                id: None,
                tenant_id: tenant(run, t),
                event_type: ty.as_str().to_owned(),
                timestamp: None,
                subject: None,
                data: serde_json::json!({"seq": i, "check": "proof"}),
            }
            .into_event()
            .map_err(|e| e.to_string())
        })
        .collect()
}

/// Malformed messages that must end in the dead-letter queue, untouched.
pub fn poison(run: &str) -> Vec<String> {
    let t = tenant(run, 0);
    vec![
        "not json at all".to_owned(),
        "{}".to_owned(),
        format!(
            r#"{{"id":"evt_poison_type","tenant_id":"{t}","type":"no.such.type","timestamp":"2026-01-01T00:00:00Z","data":{{}}}}"#
        ),
        format!(
            r#"{{"id":"evt_poison_data","tenant_id":"{t}","type":"async.completed","timestamp":"2026-01-01T00:00:00Z","data":[1,2]}}"#
        ),
        format!(
            r#"{{"id":"evt poison id","tenant_id":"{t}","type":"async.completed","timestamp":"2026-01-01T00:00:00Z","data":{{}}}}"#
        ),
    ]
}

/// The expected (webhook, event) pairs: each active webhook of the event's
/// tenant subscribed to its type.
pub fn expected_pairs(hooks: &[Hook], events: &[Event]) -> HashMap<(String, String), usize> {
    let mut by_tenant: HashMap<&TenantId, Vec<(usize, &Webhook)>> = HashMap::new();
    for (i, h) in hooks.iter().enumerate() {
        by_tenant
            .entry(&h.webhook.tenant_id)
            .or_default()
            .push((i, &h.webhook));
    }
    let mut pairs = HashMap::new();
    for e in events {
        for (i, w) in by_tenant.get(&e.tenant_id).into_iter().flatten() {
            if w.status == Status::Active && w.events.contains(e.event_type) {
                pairs.insert((w.id.to_string(), e.id.to_string()), *i);
            }
        }
    }
    pairs
}
