//! The routes of `/webhooks` and of one webhook, `/webhooks/{id}/…`.
//!
//! Handlers under `/webhooks/{id}` are handed the webhook by the router,
//! which has checked with [`owned`] that it is the caller's: they never
//! load it themselves.

pub mod crud;
pub mod deliveries;
pub mod recover;
pub mod secrets;
pub mod stats;
pub mod test_event;

use shared::audit::{Action, Author};
use shared::store::{WebhookStore, modify};
use shared::{TenantId, Webhook, WebhookId};

use crate::error::IfMissing;
use crate::{ApiError, App};

/// The tenant's webhook `id`, or 404 `webhook_not_found` when the tenant
/// has none with that id (another tenant's included). The router calls it
/// for every route under `/webhooks/{id}`: being the tenant's is what
/// isolates one tenant's webhooks, delivery logs, stats and recoveries
/// from another's, as the stores below key most of those by webhook only.
pub async fn owned<S: WebhookStore>(
    app: &App<S>,
    tenant: &TenantId,
    id: WebhookId,
) -> Result<Webhook, ApiError> {
    app.store
        .get_webhook(tenant, id)
        .await?
        .ok_or(ApiError::WebhookNotFound)
}

/// Read, change, write, retried when another write came first (see
/// [`shared::store::modify`]): a change must start from the webhook as it
/// is now, not from the copy the router checked. A webhook deleted since
/// is not found.
/// The write carries its audit entry: `action`, by `author`.
async fn read_change_write<S: WebhookStore>(
    app: &App<S>,
    (action, author): (Action, &Author),
    id: WebhookId,
    change: impl Fn(&mut Webhook) -> bool,
) -> Result<Webhook, ApiError> {
    modify(
        &app.store,
        &author.tenant,
        id,
        (action, &author.actor),
        change,
    )
    .await
    .if_missing(ApiError::WebhookNotFound)
}
