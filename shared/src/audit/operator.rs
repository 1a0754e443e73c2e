//! The operator's entries, naming what a write does, for writes made
//! outside the API's handlers: the operator's tools and tests' fixtures.

use crate::api_key::ApiKey;
use crate::audit::{self, Action, Actor, AuditEntry, Target, TargetKind};
use crate::event::EventId;
use crate::{TenantId, TenantSettings, Webhook, WebhookId};
use serde_json::json;

/// The operator's `webhook.created` of `webhook`.
pub fn created(webhook: &Webhook) -> AuditEntry {
    audit::webhook_created(webhook, &Actor::Operator)
}

/// The operator's `webhook.updated`, from `old` to `new`.
pub fn updated(old: &Webhook, new: &Webhook) -> AuditEntry {
    audit::webhook_changed(old, new, Action::WebhookUpdated, &Actor::Operator)
}

/// The operator's `webhook.deleted` of the webhook `id`.
pub fn deleted(tenant: &TenantId, id: WebhookId) -> AuditEntry {
    AuditEntry::by_operator(
        tenant,
        Action::WebhookDeleted,
        Target::new(TargetKind::Webhook, id),
    )
}

/// The operator's `action` on the API key `key`.
pub fn key(key: &ApiKey, action: Action) -> AuditEntry {
    audit::api_key(key, action, &Actor::Operator, json!({}))
}

/// The operator's `settings.updated`, from the defaults to `new`.
pub fn settings(tenant: &TenantId, new: &TenantSettings) -> AuditEntry {
    audit::settings_changed(tenant, &TenantSettings::default(), new, &Actor::Operator)
}

/// The operator's `event.payload_deleted` of the event `id`.
pub fn payload_deleted(tenant: &TenantId, id: &EventId) -> AuditEntry {
    AuditEntry::by_operator(
        tenant,
        Action::EventPayloadDeleted,
        Target::new(TargetKind::Event, id),
    )
}

/// The operator's `event.redelivered` of the event `id`.
pub fn redelivered(tenant: &TenantId, id: &EventId) -> AuditEntry {
    AuditEntry::by_operator(
        tenant,
        Action::EventRedelivered,
        Target::new(TargetKind::Event, id),
    )
}

/// The operator's `recovery.started` for the webhook `id`.
pub fn recovery(tenant: &TenantId, id: WebhookId) -> AuditEntry {
    AuditEntry::by_operator(
        tenant,
        Action::RecoveryStarted,
        Target::new(TargetKind::Webhook, id),
    )
}
