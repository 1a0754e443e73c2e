//! `webhooks audit-log --tenant T`: a tenant's audit log, newest first, as
//! the API shows it (the operator's view of `GET /audit-log`).

use serde_json::Value;
use shared::TenantId;
use shared::audit::{Action, AuditEntry};
use shared::store::{AuditQuery, AuditStore};
use time::format_description::well_known::Rfc3339;

/// Entries read per request.
const PAGE: usize = 100;

/// What the operator asked, as typed.
pub struct Request {
    pub tenant: String,
    pub action: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    /// At most this many entries.
    pub limit: usize,
    pub json: bool,
}

/// Reads the log and renders it: a JSON array (`--json`), or a table.
pub async fn run(store: &impl AuditStore, request: Request) -> Result<String, String> {
    let tenant =
        TenantId::parse(&request.tenant).map_err(|e| format!("--tenant: {}", e.message))?;
    let action = request
        .action
        .map(|a| a.parse::<Action>())
        .transpose()
        .map_err(|e| format!("--action: {}", e.message))?;
    let time = |flag: &str, value: Option<String>| {
        value
            .map(|v| time::OffsetDateTime::parse(&v, &Rfc3339))
            .transpose()
            .map_err(|e| format!("{flag}: not an RFC 3339 time: {e}"))
    };
    let mut query = AuditQuery {
        limit: request.limit.min(PAGE),
        after: None,
        action,
        since: time("--since", request.since)?,
        until: time("--until", request.until)?,
    };
    let mut entries: Vec<AuditEntry> = Vec::new();
    while entries.len() < request.limit {
        query.limit = (request.limit - entries.len()).min(PAGE);
        let page = store
            .audit_log(&tenant, &query)
            .await
            .map_err(|e| e.to_string())?;
        entries.extend(page.items);
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    Ok(if request.json {
        let views: Vec<Value> = entries.iter().map(AuditEntry::view).collect();
        serde_json::to_string_pretty(&views).map_err(|e| e.to_string())? + "\n"
    } else {
        table(&entries)
    })
}

/// One line per entry: when, what, who, to what, and what changed.
fn table(entries: &[AuditEntry]) -> String {
    let mut out = format!(
        "{:<24}  {:<31}  {:<22}  {:<36}  CHANGES\n",
        "AT", "ACTION", "ACTOR", "TARGET"
    );
    for e in entries {
        let at = e.at.format(&Rfc3339).unwrap_or_default();
        let actor = match &e.actor {
            shared::audit::Actor::ApiKey { prefix, .. } => format!("key {prefix}"),
            shared::audit::Actor::Operator => "operator".to_owned(),
            shared::audit::Actor::Platform => "platform".to_owned(),
        };
        out.push_str(&format!(
            "{at:<24}  {:<31}  {actor:<22}  {:<36}  {}\n",
            e.action.as_str(),
            e.target.id,
            e.changes
        ));
    }
    if entries.is_empty() {
        out.push_str("(no entries)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use shared::audit::{self, Actor};
    use shared::store::{MemoryStore, SettingsStore};

    use super::*;

    #[tokio::test]
    async fn the_log_reads_newest_first_and_a_bad_flag_is_named() {
        let store = MemoryStore::default();
        let tenant = TenantId::parse("acme").unwrap();
        let old = store.settings(&tenant).await.unwrap();
        for hours in [24, 48] {
            let mut new = old;
            new.payload_retention_hours = hours;
            let entry = audit::settings_changed(&tenant, &old, &new, &Actor::Operator);
            store.put_settings(&tenant, &new, &entry).await.unwrap();
        }
        let ask = |json| Request {
            tenant: "acme".into(),
            action: Some("settings.updated".into()),
            since: None,
            until: None,
            limit: 10,
            json,
        };
        let out = run(&store, ask(true)).await.unwrap();
        let read: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            read[0]["changes"]["payload_retention_hours"],
            json!({"old": 168, "new": 48})
        );
        assert_eq!(read.as_array().unwrap().len(), 2);
        let text = run(&store, ask(false)).await.unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.contains("operator"));
        let bad = Request {
            action: Some("webhook.stolen".into()),
            ..ask(false)
        };
        assert!(run(&store, bad).await.unwrap_err().starts_with("--action"));
    }
}
