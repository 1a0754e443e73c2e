//! The audit log: who changed what of a tenant's configuration and data,
//! and when. An entry is written in the same DynamoDB transaction as the
//! change it records (see the store's audited writes), kept
//! [`RETENTION_DAYS`] in the tenant's own key space, and holds names, ids
//! and hosts only: never a token, signing secret, API key or payload.

pub mod operator;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use ulid::Ulid;

use crate::api_key::ApiKey;
use crate::{TenantId, TenantSettings, ValidationError, Webhook};

/// How long an entry is kept (DynamoDB TTL): a year and a month, so that a
/// yearly review still finds the whole year.
pub const RETENTION_DAYS: i64 = 400;

/// What was done. The wire name is `<what>.<done>`, e.g. `webhook.created`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    #[serde(rename = "webhook.created")]
    WebhookCreated,
    #[serde(rename = "webhook.updated")]
    WebhookUpdated,
    #[serde(rename = "webhook.deleted")]
    WebhookDeleted,
    #[serde(rename = "webhook.token_rotated")]
    WebhookTokenRotated,
    #[serde(rename = "webhook.signing_secret_rotated")]
    WebhookSigningSecretRotated,
    /// The platform turned the webhook off (its failing streak, or `410 Gone`).
    #[serde(rename = "webhook.disabled")]
    WebhookDisabled,
    #[serde(rename = "api_key.created")]
    ApiKeyCreated,
    #[serde(rename = "api_key.revoked")]
    ApiKeyRevoked,
    #[serde(rename = "api_key.rotated")]
    ApiKeyRotated,
    #[serde(rename = "settings.updated")]
    SettingsUpdated,
    #[serde(rename = "event.payload_deleted")]
    EventPayloadDeleted,
    /// The operator purged the tenant: the one entry a purge leaves, with
    /// what it deleted.
    #[serde(rename = "tenant.purged")]
    TenantPurged,
    #[serde(rename = "event.redelivered")]
    EventRedelivered,
    #[serde(rename = "recovery.started")]
    RecoveryStarted,
}

impl Action {
    /// Every action, in the order the docs list them.
    pub const ALL: [Action; 14] = [
        Action::WebhookCreated,
        Action::WebhookUpdated,
        Action::WebhookDeleted,
        Action::WebhookTokenRotated,
        Action::WebhookSigningSecretRotated,
        Action::WebhookDisabled,
        Action::ApiKeyCreated,
        Action::ApiKeyRevoked,
        Action::ApiKeyRotated,
        Action::SettingsUpdated,
        Action::EventPayloadDeleted,
        Action::EventRedelivered,
        Action::RecoveryStarted,
        Action::TenantPurged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::WebhookCreated => "webhook.created",
            Action::WebhookUpdated => "webhook.updated",
            Action::WebhookDeleted => "webhook.deleted",
            Action::WebhookTokenRotated => "webhook.token_rotated",
            Action::WebhookSigningSecretRotated => "webhook.signing_secret_rotated",
            Action::WebhookDisabled => "webhook.disabled",
            Action::ApiKeyCreated => "api_key.created",
            Action::ApiKeyRevoked => "api_key.revoked",
            Action::ApiKeyRotated => "api_key.rotated",
            Action::SettingsUpdated => "settings.updated",
            Action::EventPayloadDeleted => "event.payload_deleted",
            Action::TenantPurged => "tenant.purged",
            Action::EventRedelivered => "event.redelivered",
            Action::RecoveryStarted => "recovery.started",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
                ValidationError::new("action", format!("must be one of {}", known.join(", ")))
            })
    }
}

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// A request made with this API key: its id and the characters of it
    /// the dashboard shows, never the key.
    ApiKey { id: String, prefix: String },
    /// The operator's CLI.
    Operator,
    /// The platform itself (a webhook turned off after failing).
    Platform,
}

impl Actor {
    pub fn api_key(key: &ApiKey) -> Self {
        Actor::ApiKey {
            id: key.id.to_string(),
            prefix: key.shown.clone(),
        }
    }
}

/// Who makes a change, in which tenant: what every entry of one request
/// shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub tenant: TenantId,
    pub actor: Actor,
}

impl Author {
    pub fn new(tenant: &TenantId, actor: Actor) -> Self {
        Self {
            tenant: tenant.clone(),
            actor,
        }
    }

    /// An entry of this author's, made now.
    pub fn entry(&self, action: Action, target: Target, changes: Value) -> AuditEntry {
        AuditEntry::new(&self.tenant, &self.actor, action, target, changes)
    }
}

/// What it was done to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    #[serde(rename = "type")]
    pub kind: TargetKind,
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Webhook,
    ApiKey,
    Settings,
    Event,
    Tenant,
}

impl Target {
    pub fn new(kind: TargetKind, id: impl fmt::Display) -> Self {
        Self {
            kind,
            id: id.to_string(),
        }
    }
}

/// An entry's id: `aud_` and a ULID made from its time, so that ids sort
/// as entries happened and a time range is a range of ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AuditId(Ulid);

impl AuditId {
    const PREFIX: &'static str = "aud_";

    /// An id for an entry made at `at`, after every id this process made
    /// before (a request's entries, made within one millisecond, read back
    /// in the order they were made).
    fn at(at: OffsetDateTime) -> Self {
        static MADE: std::sync::Mutex<ulid::Generator> =
            std::sync::Mutex::new(ulid::Generator::new());
        let time = std::time::SystemTime::from(at);
        let made = MADE
            .lock()
            .ok()
            .and_then(|mut g| g.generate_from_datetime(time).ok());
        Self(made.unwrap_or_else(|| Ulid::from_datetime(time)))
    }

    /// The smallest id of an entry made at `at` or later: entries keep
    /// their time to the millisecond, so a finer `at` starts at the next
    /// millisecond.
    pub fn first_at(at: OffsetDateTime) -> Self {
        let nanos = at.unix_timestamp_nanos();
        let ms = nanos.div_euclid(1_000_000) + i128::from(nanos.rem_euclid(1_000_000) > 0);
        Self(Ulid::from_parts(u64::try_from(ms).unwrap_or(0), 0))
    }
}

impl fmt::Display for AuditId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, self.0)
    }
}

impl FromStr for AuditId {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::ids::prefixed_ulid(s, Self::PREFIX)
            .map(Self)
            .ok_or_else(|| {
                ValidationError::new("id", "is not an audit entry id (aud_ + 26 characters)")
            })
    }
}

impl Serialize for AuditId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AuditId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse()
            .map_err(|e: ValidationError| serde::de::Error::custom(e.message))
    }
}

/// One entry of a tenant's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: AuditId,
    /// Kept with the entry; not shown, the log being read per tenant.
    pub tenant_id: TenantId,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub action: Action,
    pub actor: Actor,
    pub target: Target,
    /// What changed: field names, hosts, counts, ids. Never a secret or a
    /// payload.
    pub changes: Value,
}

impl AuditEntry {
    /// An entry made now.
    pub fn new(
        tenant: &TenantId,
        actor: &Actor,
        action: Action,
        target: Target,
        changes: Value,
    ) -> Self {
        Self::at(tenant, actor, action, target, changes, now())
    }

    pub fn at(
        tenant: &TenantId,
        actor: &Actor,
        action: Action,
        target: Target,
        changes: Value,
        at: OffsetDateTime,
    ) -> Self {
        Self {
            id: AuditId::at(at),
            tenant_id: tenant.clone(),
            at,
            action,
            actor: actor.clone(),
            target,
            changes,
        }
    }

    /// The operator's entry, with no changes to name.
    pub fn by_operator(tenant: &TenantId, action: Action, target: Target) -> Self {
        Self::new(tenant, &Actor::Operator, action, target, json!({}))
    }

    /// The entry as the API and the CLI show it: without its tenant.
    pub fn view(&self) -> Value {
        let mut shown = serde_json::to_value(self).unwrap_or_default();
        if let Value::Object(fields) = &mut shown {
            fields.remove("tenant_id");
        }
        shown
    }

    /// When DynamoDB's TTL removes it (Unix seconds).
    pub fn expires_at(&self) -> i64 {
        (self.at + time::Duration::days(RETENTION_DAYS)).unix_timestamp()
    }
}

/// Now, to the millisecond: what an entry's id keeps of its time.
pub fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    let ms = now.millisecond();
    now.replace_millisecond(ms).unwrap_or(now)
}

/// A webhook made: its URL's host and what it listens to.
pub fn webhook_created(webhook: &Webhook, actor: &Actor) -> AuditEntry {
    AuditEntry::new(
        &webhook.tenant_id,
        actor,
        Action::WebhookCreated,
        Target::new(TargetKind::Webhook, webhook.id),
        with_auth(
            json!({
                "host": host(webhook),
                "events": webhook.events,
                "status": webhook.status,
            }),
            webhook,
        ),
    )
}

/// `changes` with the webhook's client identity and credentials, when it has them.
fn with_auth(mut changes: Value, webhook: &Webhook) -> Value {
    if let Value::Object(map) = &mut changes {
        for (name, value) in [
            ("client_tls", identity(webhook)),
            ("oauth2", credentials(webhook)),
        ] {
            if !value.is_null() {
                map.insert(name.into(), value);
            }
        }
    }
    changes
}

/// A client identity as the log names it: its certificate, never its key.
fn identity(w: &Webhook) -> Value {
    match &w.client_tls {
        Some(c) => {
            json!({ "fingerprint": c.fingerprint, "not_after": c.not_after.format(&Rfc3339).ok() })
        }
        None => Value::Null,
    }
}

/// Client credentials as the log names them: where the secret goes and
/// whose it is, never the secret.
fn credentials(w: &Webhook) -> Value {
    match &w.oauth2 {
        Some(o) => {
            json!({ "token_host": o.token_url.as_url().host_str(), "client_id": o.client_id })
        }
        None => Value::Null,
    }
}

/// A webhook deleted: the host it sent to.
pub fn webhook_deleted(webhook: &Webhook, actor: &Actor) -> AuditEntry {
    AuditEntry::new(
        &webhook.tenant_id,
        actor,
        Action::WebhookDeleted,
        Target::new(TargetKind::Webhook, webhook.id),
        json!({ "host": host(webhook) }),
    )
}

/// A change of a webhook, from how it was to how it is: the names of the
/// customer's fields that changed, the old and new host when the URL did,
/// the old and new status when it did. A token or secret is named, never
/// shown.
pub fn webhook_changed(old: &Webhook, new: &Webhook, action: Action, actor: &Actor) -> AuditEntry {
    AuditEntry::new(
        &new.tenant_id,
        actor,
        action,
        Target::new(TargetKind::Webhook, new.id),
        webhook_changes(old, new),
    )
}

/// The platform turns the webhook off, for `reason`.
pub fn webhook_disabled(webhook: &Webhook, reason: &str) -> AuditEntry {
    let mut off = webhook.clone();
    off.status = crate::Status::Inactive;
    off.disabled_reason = Some(reason.to_owned());
    webhook_changed(webhook, &off, Action::WebhookDisabled, &Actor::Platform)
}

/// An event's payload deleted by `actor`; `subject` when the deletion was
/// of every event of that job.
pub fn payload_deleted(
    tenant: &TenantId,
    event: &crate::event::EventId,
    subject: Option<&crate::event::Subject>,
    actor: &Actor,
) -> AuditEntry {
    let changes = match subject {
        Some(s) => json!({ "subject": s.as_str() }),
        None => json!({}),
    };
    AuditEntry::new(
        tenant,
        actor,
        Action::EventPayloadDeleted,
        Target::new(TargetKind::Event, event),
        changes,
    )
}

/// The customer's fields of a webhook, by the name the API gives them.
const WEBHOOK_FIELDS: [&str; 12] = [
    "url",
    "events",
    "status",
    "token",
    "signing_secret",
    "description",
    "retry_policy",
    "payload",
    "throttle_rate",
    "headers",
    "oauth2",
    "client_tls",
];

fn webhook_changes(old: &Webhook, new: &Webhook) -> Value {
    let (before, after) = (as_map(old), as_map(new));
    let fields: Vec<&str> = WEBHOOK_FIELDS
        .into_iter()
        .filter(|f| before.get(*f) != after.get(*f))
        .collect();
    let mut changes = Map::new();
    if fields.contains(&"url") {
        changes.insert(
            "url".into(),
            json!({ "old_host": host(old), "new_host": host(new) }),
        );
    }
    if fields.contains(&"headers") {
        // Names only: a value may be a secret.
        changes.insert(
            "headers".into(),
            json!({ "old": old.headers.names(), "new": new.headers.names() }),
        );
    }
    if fields.contains(&"client_tls") {
        changes.insert(
            "client_tls".into(),
            json!({ "old": identity(old), "new": identity(new) }),
        );
    }
    if fields.contains(&"oauth2") {
        changes.insert(
            "oauth2".into(),
            json!({ "old": credentials(old), "new": credentials(new) }),
        );
    }
    if fields.contains(&"status") {
        changes.insert(
            "status".into(),
            json!({ "old": old.status, "new": new.status }),
        );
    }
    if new.disabled_reason != old.disabled_reason
        && let Some(reason) = &new.disabled_reason
    {
        changes.insert("disabled_reason".into(), json!(reason));
    }
    changes.insert("fields".into(), json!(fields));
    Value::Object(changes)
}

fn as_map(webhook: &Webhook) -> Map<String, Value> {
    match serde_json::to_value(webhook) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// The URL's host (and port, if it has one): where the data goes, without
/// a path or query that might hold a secret.
fn host(webhook: &Webhook) -> String {
    let url = webhook.url.as_url();
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => String::new(),
    }
}

/// A change of the tenant's settings: each field that changed, old and new
/// (none of them is secret).
pub fn settings_changed(
    tenant: &TenantId,
    old: &TenantSettings,
    new: &TenantSettings,
    actor: &Actor,
) -> AuditEntry {
    let (before, after) = (
        serde_json::to_value(old).unwrap_or_default(),
        serde_json::to_value(new).unwrap_or_default(),
    );
    let mut changes = Map::new();
    let mut fields = Vec::new();
    if let (Value::Object(before), Value::Object(after)) = (before, after) {
        for (name, new_value) in after {
            let old_value = before.get(&name).cloned().unwrap_or(Value::Null);
            if old_value != new_value {
                changes.insert(name.clone(), json!({ "old": old_value, "new": new_value }));
                fields.push(name);
            }
        }
    }
    changes.insert("fields".into(), json!(fields));
    AuditEntry::new(
        tenant,
        actor,
        Action::SettingsUpdated,
        Target::new(TargetKind::Settings, tenant),
        Value::Object(changes),
    )
}

/// An API key's entry: its name and scope (the key itself is never known
/// after it is shown).
pub fn api_key(key: &ApiKey, action: Action, actor: &Actor, extra: Value) -> AuditEntry {
    let expires_at = key.expires_at.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    });
    let mut changes = json!({
        "name": key.name,
        "scope": key.scope,
        "prefix": key.shown,
        "expires_at": expires_at,
    });
    if let (Value::Object(c), Value::Object(extra)) = (&mut changes, extra) {
        c.extend(extra);
    }
    AuditEntry::new(
        &key.tenant_id,
        actor,
        action,
        Target::new(TargetKind::ApiKey, &key.id),
        changes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UrlPolicy;
    use crate::webhook_url::WebhookUrl;

    fn webhook() -> Webhook {
        let tenant = TenantId::parse("t1").unwrap();
        let url =
            WebhookUrl::parse("https://a.example.com/hook?secret=x", UrlPolicy::default()).unwrap();
        let events = crate::EventSet::new(crate::EventType::JOBS).unwrap();
        Webhook::new(tenant, url, events, now())
    }

    #[test]
    fn a_changed_url_names_its_hosts_and_never_its_path_or_the_token() {
        let old = webhook();
        let mut new = old.clone();
        new.url =
            WebhookUrl::parse("https://evil.example.net:8443/x?k=1", UrlPolicy::default()).unwrap();
        new.token = crate::Token::generate();
        let entry = webhook_changed(&old, &new, Action::WebhookUpdated, &Actor::Operator);
        assert_eq!(
            entry.changes,
            json!({
                "fields": ["url", "token"],
                "url": {"old_host": "a.example.com", "new_host": "evil.example.net:8443"},
            })
        );
        let text = serde_json::to_string(&entry).unwrap();
        assert!(!text.contains(new.token.expose()), "{text}");
        assert!(!text.contains("secret=x"), "{text}");
    }

    #[test]
    fn nothing_changed_names_no_field() {
        let old = webhook();
        let entry = webhook_changed(&old, &old, Action::WebhookUpdated, &Actor::Platform);
        assert_eq!(entry.changes, json!({"fields": []}));
    }

    #[test]
    fn ids_sort_by_time_and_bound_a_range() {
        let at = now();
        let later = at + time::Duration::milliseconds(5);
        let (a, b) = (AuditId::at(at), AuditId::at(later));
        assert!(a < b);
        assert!(AuditId::first_at(at) <= a && a < AuditId::first_at(later));
        let finer = at + time::Duration::microseconds(500);
        assert!(
            a < AuditId::first_at(finer),
            "an entry before a finer bound"
        );
        assert!(AuditId::first_at(finer) <= b);
        assert_eq!(a.to_string().parse::<AuditId>().unwrap(), a);
        assert!("aud_x".parse::<AuditId>().is_err());
    }

    #[test]
    fn actions_read_back_by_their_wire_name_and_a_bad_one_is_named() {
        for action in Action::ALL {
            assert_eq!(action.as_str().parse::<Action>().unwrap(), action);
            assert_eq!(
                serde_json::to_value(action).unwrap(),
                json!(action.as_str())
            );
        }
        let e = "webhook.stolen".parse::<Action>().unwrap_err();
        assert_eq!(e.field, "action");
    }
}
