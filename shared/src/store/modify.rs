//! Read, change, write, for a webhook that others may be writing at the same time.

use super::{StoreError, WebhookStore};
use crate::audit::{self, Action, Actor};
use crate::webhook::now_utc;
use crate::{TenantId, Webhook, WebhookId};

const ATTEMPTS: usize = 5;

/// Loads the webhook, applies `change`, and writes it only if nobody wrote in
/// between; otherwise starts over, with a short random back-off (a PATCH must
/// not bring back a token that a rotation replaced). `change` returns false
/// when it changed nothing (no write). The write carries its audit entry:
/// `action` by `actor`, with the fields that changed. `NotFound` if the
/// webhook does not exist; `Conflict` after five lost races.
pub async fn modify<S: WebhookStore>(
    store: &S,
    tenant: &TenantId,
    id: WebhookId,
    (action, actor): (Action, &Actor),
    change: impl Fn(&mut Webhook) -> bool,
) -> Result<Webhook, StoreError> {
    for _ in 0..ATTEMPTS {
        let mut webhook = store
            .get_webhook(tenant, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let loaded = webhook.clone();
        let loaded_at = webhook.updated_at;
        if !change(&mut webhook) {
            return Ok(webhook);
        }
        // Strictly later than the version it replaces, which the next write checks.
        webhook.updated_at = now_utc().max(loaded_at + time::Duration::microseconds(1));
        let entry = audit::webhook_changed(&loaded, &webhook, action, actor);
        match store.update_webhook(&webhook, loaded_at, &entry).await {
            Ok(()) => return Ok(webhook),
            Err(StoreError::Conflict) => crate::random::pause(2, 16).await,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict)
}
