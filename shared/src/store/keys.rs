//! The key design of the single DynamoDB table: the one place it is written down.
//!
//! | item            | PK                     | SK                  |
//! |-----------------|------------------------|---------------------|
//! | webhook         | `TENANT#<tenant_id>`   | `WEBHOOK#<wh_id>`   |
//! | tenant counters | `TENANT#<tenant_id>`   | `META`              |
//! | API key         | `APIKEY#<sha256 hex>`  | `APIKEY`            |
//! | delivery        | `WEBHOOK#<wh_id>`      | `DELIVERY#<evt_id>` |
//!
//! Deliveries also carry `GSI1PK` = `WEBHOOK#<wh_id>` and `GSI1SK` =
//! `<attempted_at>#<evt_id>` (index `GSI1`, all attributes projected), which
//! lists a webhook's deliveries newest first, and `expires_at` (Unix seconds),
//! the table's TTL attribute.
//!
//! A tenant's webhooks are one partition; `wh_` ids are ULIDs, so a reverse
//! query on `begins_with(SK, "WEBHOOK#")` lists them newest first. Reads by id
//! include the caller's tenant in the key, which is what isolates tenants.
//! `META.webhook_count` is kept in the same transaction as every create and
//! delete, so the per-tenant limit holds under concurrent requests.
//!
//! A delivery's key is (webhook, event), so the dispatcher learns which of a
//! batch's deliveries are already recorded with one `BatchGetItem` per 100,
//! and records each outcome with one `PutItem`: no claim is written first. A
//! delivery whose outcome was never recorded (the container died) may be sent
//! again, with the same `webhook-id`.

use crate::event::EventId;
use crate::{TenantId, WebhookId};

pub const PK: &str = "PK";
pub const SK: &str = "SK";
pub const WEBHOOK_PREFIX: &str = "WEBHOOK#";
pub const META_SK: &str = "META";
pub const API_KEY_SK: &str = "APIKEY";
pub const WEBHOOK_COUNT: &str = "webhook_count";
pub const GSI1: &str = "GSI1";
pub const GSI1PK: &str = "GSI1PK";
pub const GSI1SK: &str = "GSI1SK";
pub const DELIVERY_PREFIX: &str = "DELIVERY#";
/// The table's TTL attribute.
pub const EXPIRES_AT: &str = "expires_at";

pub fn tenant_pk(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}")
}

pub fn webhook_sk(id: WebhookId) -> String {
    format!("{WEBHOOK_PREFIX}{id}")
}

pub fn api_key_pk(key_hash: &str) -> String {
    format!("APIKEY#{key_hash}")
}

pub fn webhook_pk(id: WebhookId) -> String {
    format!("WEBHOOK#{id}")
}

pub fn delivery_sk(event: &EventId) -> String {
    format!("{DELIVERY_PREFIX}{event}")
}
