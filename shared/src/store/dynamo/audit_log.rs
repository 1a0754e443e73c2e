//! Audit entries: items `TENANT#<tenant>` / `AUDIT#<aud_id>`, each with
//! `expires_at` (DynamoDB TTL) [`crate::audit::RETENTION_DAYS`] after it was made. The
//! put an audited change adds to its transaction is made here.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use serde::{Deserialize, Serialize};

use super::query::{self, MAX_FILTERED_PAGES, Reading, page};
use super::write::{failed_condition, transact};
use super::{DynamoStore, Item, Keyed, backend, item, key, parse};
use crate::TenantId;
use crate::audit::{AuditEntry, AuditId};
use crate::store::{AuditQuery, AuditStore, Conditional, Page, StoreError, keys};

#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    entry: AuditEntry,
    expires_at: i64,
}

fn audit_item(entry: &AuditEntry) -> Result<Item, StoreError> {
    item(Keyed {
        pk: keys::tenant_pk(&entry.tenant_id),
        sk: keys::audit_sk(entry.id),
        attributes: Stored {
            entry: entry.clone(),
            expires_at: entry.expires_at(),
        },
    })
}

/// An id taken already fails the write rather than replace an entry.
const NEW: &str = "attribute_not_exists(PK)";

impl DynamoStore {
    /// The entry's `Put`, for the transaction of the change it records.
    pub(super) fn audit_put(&self, entry: &AuditEntry) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(audit_item(entry)?))
            .condition_expression(NEW)
            .build()
            .map_err(backend)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Writes `change` and its entry in one transaction: `Refused` (and
    /// nothing written) when the change's condition does not hold.
    pub(super) async fn audited(
        &self,
        change: TransactWriteItem,
        entry: &AuditEntry,
    ) -> Result<Conditional, StoreError> {
        let audit = self.audit_put(entry)?;
        let client = self.client().await?;
        let sent = transact(|| {
            client
                .transact_write_items()
                .transact_items(change.clone())
                .transact_items(audit.clone())
        })
        .await;
        match failed_condition(sent)? {
            None => Ok(Conditional::Applied),
            Some(0) => Ok(Conditional::Refused),
            Some(_) => Err(StoreError::Backend(
                "an audit entry with this id exists already".into(),
            )),
        }
    }
}

impl AuditStore for DynamoStore {
    async fn audit_log(
        &self,
        tenant: &TenantId,
        q: &AuditQuery,
    ) -> Result<Page<AuditEntry, AuditId>, StoreError> {
        let pk = keys::tenant_pk(tenant);
        let lower = q.since.map_or_else(
            || keys::AUDIT_PREFIX.to_owned(),
            |at| keys::audit_sk(AuditId::first_at(at)),
        );
        // `until` is exclusive: no id of an entry before it reaches this one.
        let upper = q.until.map_or_else(
            || format!("{}~", keys::AUDIT_PREFIX),
            |at| keys::audit_sk(AuditId::first_at(at)),
        );
        let mut query = self
            .client()
            .await?
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND SK BETWEEN :lower AND :upper")
            .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
            .expression_attribute_values(":lower", AttributeValue::S(lower))
            .expression_attribute_values(":upper", AttributeValue::S(upper))
            // The log is read after a change: the change shows.
            .consistent_read(true);
        if let Some(action) = q.action {
            query = query
                .filter_expression("#action = :action")
                .expression_attribute_names("#action", "action")
                .expression_attribute_values(":action", AttributeValue::S(action.as_str().into()));
        }
        let start = q.after.map(|id| key(pk, keys::audit_sk(id)));
        let reading = Reading::NewestFirst {
            limit: q.limit,
            max_pages: MAX_FILTERED_PAGES,
        };
        let found = query::read(query, start, reading).await?;
        // Stopped at the page budget: the next page starts where it did.
        let resume = found
            .resume
            .as_ref()
            .and_then(|key| key.get(keys::SK))
            .and_then(|v| v.as_s().ok())
            .and_then(|sk| sk.strip_prefix(keys::AUDIT_PREFIX))
            .and_then(|id| id.parse::<AuditId>().ok());
        let entries = found
            .items
            .into_iter()
            .map(|item| parse::<Keyed<Stored>>(item).map(|k| k.attributes.entry))
            .filter(|e| {
                e.as_ref().map_or(true, |e| {
                    q.since.is_none_or(|s| e.at >= s) && q.until.is_none_or(|u| e.at < u)
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut listed = page(entries, q.limit, |e| e.id);
        if listed.next.is_none() {
            listed.next = resume;
        }
        Ok(listed)
    }

    async fn record(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.client()
            .await?
            .put_item()
            .table_name(&self.table)
            .set_item(Some(audit_item(entry)?))
            .condition_expression(NEW)
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue as V;

    use super::*;
    use crate::audit::{Action, Actor, webhook_changed};
    use crate::{EventSet, EventType, TenantId, UrlPolicy, Webhook, WebhookUrl};

    /// An item's size as DynamoDB bills it: each name and value, a number
    /// about half its digits, a map or list 3 bytes and 1 per element.
    fn billed(value: &V) -> usize {
        match value {
            V::S(s) => s.len(),
            V::N(n) => n.len().div_ceil(2) + 1,
            V::Bool(_) | V::Null(_) => 1,
            V::M(m) => {
                3 + m
                    .iter()
                    .map(|(k, v)| k.len() + billed(v) + 1)
                    .sum::<usize>()
            }
            V::L(l) => 3 + l.iter().map(|v| billed(v) + 1).sum::<usize>(),
            _ => 0,
        }
    }

    /// What the docs' cost rests on: a URL change (the largest common
    /// entry, with a key as actor and two long hosts) is one write unit.
    #[test]
    fn an_entry_is_under_a_kilobyte() {
        let tenant = TenantId::parse(&"t".repeat(TenantId::MAX_LEN)).unwrap();
        let policy = UrlPolicy::default();
        let url = |h: &str| WebhookUrl::parse(&format!("https://{h}/hook"), policy).unwrap();
        let events = EventSet::new(EventType::JOBS).unwrap();
        let old = Webhook::new(tenant, url(&"a".repeat(60)), events, crate::audit::now());
        let mut new = old.clone();
        new.url = url(&"b".repeat(60));
        new.status = crate::Status::Inactive;
        let actor = Actor::ApiKey {
            id: format!("key_{}", "0".repeat(26)),
            prefix: "whk_AbCd".into(),
        };
        let entry = webhook_changed(&old, &new, Action::WebhookUpdated, &actor);
        let item = audit_item(&entry).unwrap();
        let size: usize = item.iter().map(|(k, v)| k.len() + billed(v)).sum();
        eprintln!("a URL change's entry: {size} bytes");
        assert!(size < 1024, "{size} bytes");
        assert!(size > 300, "{size} bytes: the docs say 0.3 to 0.7 KB");
    }
}
