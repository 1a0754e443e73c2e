//! The key design of the single DynamoDB table: the one place it is written down.
//!
//! | item            | PK                     | SK                  |
//! |-----------------|------------------------|---------------------|
//! | webhook         | `TENANT#<tenant_id>`   | `WEBHOOK#<wh_id>`   |
//! | tenant counters | `TENANT#<tenant_id>`   | `META`              |
//! | API key         | `APIKEY#<sha256 hex>`  | `APIKEY`            |
//!
//! A tenant's webhooks are one partition; `wh_` ids are ULIDs, so a reverse
//! query on `begins_with(SK, "WEBHOOK#")` lists them newest first. Reads by id
//! include the caller's tenant in the key, which is what isolates tenants.
//! `META.webhook_count` is kept in the same transaction as every create and
//! delete, so the per-tenant limit holds under concurrent requests.

use crate::{TenantId, WebhookId};

pub const PK: &str = "PK";
pub const SK: &str = "SK";
pub const WEBHOOK_PREFIX: &str = "WEBHOOK#";
pub const META_SK: &str = "META";
pub const API_KEY_SK: &str = "APIKEY";
pub const WEBHOOK_COUNT: &str = "webhook_count";

pub fn tenant_pk(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}")
}

pub fn webhook_sk(id: WebhookId) -> String {
    format!("{WEBHOOK_PREFIX}{id}")
}

pub fn api_key_pk(key_hash: &str) -> String {
    format!("APIKEY#{key_hash}")
}
