//! The key design of the single DynamoDB table: the one place it is written down.
//!
//! | item            | PK                           | SK                             |
//! |-----------------|------------------------------|--------------------------------|
//! | webhook         | `TENANT#<tenant_id>`         | `WEBHOOK#<wh_id>`              |
//! | tenant counters | `TENANT#<tenant_id>`         | `META`                         |
//! | redelivery budget | `TENANT#<tenant_id>`       | `REDELIVERIES#<unix minute>`   |
//! | test event budget | `TENANT#<tenant_id>`       | `TESTS#<unix time ÷ 10 s>`     |
//! | recovery budget | `TENANT#<tenant_id>`         | `RECOVERY_CHECKS#<unix minute>` |
//! | costly read budget | `TENANT#<tenant_id>`      | `READS#<unix minute>`          |
//! | API key         | `APIKEY#<sha256 hex>`        | `APIKEY` (GSI1: `APIKEYS#<tenant_id>`, `<key_id>`) |
//! | API key set     | `TENANT#<tenant_id>`         | `APIKEYS` (a version, the keys of the last minute) |
//! | tenant settings | `TENANT#<tenant_id>`         | `WEBHOOKS` (sorts right after the webhooks: the dispatcher's one query per tenant reads both) |
//! | recovery        | `TENANT#<tenant_id>`         | `RECOVERY#<wh_id>` (the last one) |
//! | audit entry     | `TENANT#<tenant_id>`         | `AUDIT#<aud_id>` (ids sort by time; `expires_at` 400 days on) |
//! | event           | `EVENT#<tenant_id>#<evt_id>` | `EVENT` (and `manual_attempts_<wh_id>` counters, `manual_at_<wh_id>` times) |
//! | event payload   | `EVENT#<tenant_id>#<evt_id>` | `PAYLOAD` (`data`; its own `expires_at`; in no index) |
//! | delivery        | `EVENT#<tenant_id>#<evt_id>` | `DELIVERY#<wh_id>#<attempt:03>`|
//!
//! An event, its payload and every attempt to deliver it share a partition:
//! one query returns an event with its payload and deliveries (`GET
//! /events/{id}`). The payload is an item of its own so that it is held
//! once (the event's item is copied into GSI1), expires on its own clock
//! (the tenant's `payload_retention_hours`, DynamoDB TTL deleting the item),
//! is never written when the tenant keeps none, and is deleted without
//! touching the event's log. Events also
//! carry `GSI1PK` = `EVENTS#<tenant_id>` and `GSI1SK` = `<timestamp>#<evt_id>`,
//! which lists a tenant's events newest first and by time range; deliveries
//! carry `GSI1PK` = `WEBHOOK#<wh_id>` and `GSI1SK` =
//! `<attempted_at>#<evt_id>#<attempt:03>`, a webhook's delivery log newest
//! first (index `GSI1`, all attributes projected). Both carry `expires_at`
//! (Unix seconds), the table's TTL attribute.
//!
//! Index `GSI2` is narrow: its entries hold their keys and the few small
//! attributes in [`GSI2_ATTRIBUTES`], nothing else. Deliveries carry
//! `GSI2PK` = `WEBHOOK#<wh_id>` and `GSI2SK` = their `GSI1SK`: a webhook's
//! stats read a time range of about 0.3 KB entries instead of whole records
//! (which hold the response excerpt and the `Location` header). Events with
//! a subject carry `GSI2PK` = `SUBJECT#<tenant_id>#<subject>` and `GSI2SK` =
//! their `GSI1SK`: a job's events, newest first, in one query of keys
//! (`GET /events?subject=`, erasing one person's payloads). Items without
//! `GSI2PK` are not in it.
//!
//! A tenant's webhooks are one partition; `wh_` ids are ULIDs, so a reverse
//! query on `begins_with(SK, "WEBHOOK#")` lists them newest first. Reads by id
//! include the caller's tenant in the key, which is what isolates tenants.
//! `META.webhook_count` is kept in the same transaction as every create and
//! delete, so the per-tenant limit holds under concurrent requests. The
//! active API keys are counted from the index, which lags writes: `APIKEYS`
//! holds the keys made in the last minute and a version that every create
//! bumps in its transaction, so concurrent creates count each other.
//!
//! A delivery's key is (tenant, event, webhook, attempt), so the dispatcher
//! learns which of a batch's attempts are already recorded with one
//! `BatchGetItem` per 100, and records each outcome with one `PutItem`: no
//! claim is written first. An attempt whose outcome was never recorded (the
//! container died) may be sent again, with the same `webhook-id`.

use crate::event::EventId;
use crate::{TenantId, WebhookId};

pub const PK: &str = "PK";
pub const SK: &str = "SK";
pub const WEBHOOK_PREFIX: &str = "WEBHOOK#";
pub const META_SK: &str = "META";
pub const API_KEY_SK: &str = "APIKEY";
pub const API_KEY_SET_SK: &str = "APIKEYS";
pub const WEBHOOK_COUNT: &str = "webhook_count";
pub const GSI1: &str = "GSI1";
pub const GSI1PK: &str = "GSI1PK";
pub const GSI1SK: &str = "GSI1SK";
pub const GSI2: &str = "GSI2";
pub const GSI2PK: &str = "GSI2PK";
pub const GSI2SK: &str = "GSI2SK";
/// What `GSI2` projects besides the keys.
pub const GSI2_ATTRIBUTES: [&str; 2] = ["outcome", "duration_ms"];
pub const DELIVERY_PREFIX: &str = "DELIVERY#";
/// A webhook's slow-lane mark (see [`crate::lane`]).
pub const SLOW_SINCE: &str = "slow_since";
/// The webhook's throttle: its next free slot, and since when deliveries wait.
pub const THROTTLE_NEXT: &str = "throttle_next";
pub const THROTTLED_SINCE: &str = "throttled_since";
/// The webhook's failing streak.
pub const FAILING_SINCE: &str = "failing_since";
pub const FAILING_NOTICE_AT: &str = "failing_notice_at";
pub const LAST_ERROR: &str = "last_error";
/// The table's TTL attribute.
pub const EXPIRES_AT: &str = "expires_at";

pub fn tenant_pk(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}")
}

/// What a tenant may do only so many times per window of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Allowance {
    /// Manual redelivery attempts queued, per minute.
    Redeliveries,
    /// Test events sent, per 10 seconds: each may hold an api function for
    /// the whole delivery deadline.
    TestEvents,
    /// Events recoveries check, per minute: each is an event and its
    /// attempts read, and a page holds a dispatch function of the slow lane.
    RecoveryChecks,
    /// Reads that may each cost hundreds of read units (a webhook's stats,
    /// a listing filtered by value), per minute.
    CostlyReads,
}

impl Allowance {
    pub const fn window_secs(self) -> i64 {
        match self {
            Allowance::Redeliveries | Allowance::RecoveryChecks | Allowance::CostlyReads => 60,
            Allowance::TestEvents => 10,
        }
    }

    /// The window a Unix time falls in.
    pub const fn window_of(self, unix_secs: i64) -> i64 {
        unix_secs.div_euclid(self.window_secs())
    }

    /// The tenant's counter for one window (under the tenant's key).
    pub fn sk(self, window: i64) -> String {
        match self {
            Allowance::Redeliveries => format!("REDELIVERIES#{window}"),
            Allowance::TestEvents => format!("TESTS#{window}"),
            Allowance::RecoveryChecks => format!("RECOVERY_CHECKS#{window}"),
            Allowance::CostlyReads => format!("READS#{window}"),
        }
    }
}

pub fn webhook_sk(id: WebhookId) -> String {
    format!("{WEBHOOK_PREFIX}{id}")
}

pub fn api_key_pk(key_hash: &str) -> String {
    format!("APIKEY#{key_hash}")
}

/// A tenant's API keys in GSI1 (sort key: the key's id).
pub fn api_keys_gsi_pk(tenant: &TenantId) -> String {
    format!("APIKEYS#{tenant}")
}

pub fn webhook_pk(id: WebhookId) -> String {
    format!("WEBHOOK#{id}")
}

pub const EVENT_SK: &str = "EVENT";
/// An event's payload, beside the event in its partition.
pub const PAYLOAD_SK: &str = "PAYLOAD";
/// A tenant's settings: the first sort key after every `WEBHOOK#<id>`, so
/// that `begins_with(SK, "WEBHOOK")` reads a tenant's webhooks and settings
/// in one query.
pub const SETTINGS_SK: &str = "WEBHOOKS";

/// A tenant's events of one subject in GSI2 (sort key: the event's
/// [`crate::event_log::StoredEvent::sort_key`]).
pub fn subject_gsi_pk(tenant: &TenantId, subject: &crate::event::Subject) -> String {
    format!("SUBJECT#{tenant}#{subject}")
}

/// The event item's counter of a webhook's manual attempts.
pub fn manual_attempts(webhook: WebhookId) -> String {
    format!("manual_attempts_{webhook}")
}

/// When the event item's counter of a webhook's manual attempts last moved
/// (Unix seconds): a recovery's pending check.
pub fn manual_at(webhook: WebhookId) -> String {
    format!("manual_at_{webhook}")
}

/// Every audit entry's sort key starts with this.
pub const AUDIT_PREFIX: &str = "AUDIT#";

pub fn audit_sk(id: crate::audit::AuditId) -> String {
    format!("{AUDIT_PREFIX}{id}")
}

/// A webhook's recovery, under its tenant's key.
pub fn recovery_sk(webhook: WebhookId) -> String {
    format!("RECOVERY#{webhook}")
}

pub fn event_pk(tenant: &TenantId, event: &EventId) -> String {
    format!("EVENT#{tenant}#{event}")
}

pub fn events_gsi_pk(tenant: &TenantId) -> String {
    format!("EVENTS#{tenant}")
}

pub fn delivery_sk(webhook: WebhookId, attempt: u32) -> String {
    format!("{DELIVERY_PREFIX}{webhook}#{attempt:03}")
}
