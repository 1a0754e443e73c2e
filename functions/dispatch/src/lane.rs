//! The slow-lane mark, kept by the attempts themselves: a main-lane attempt
//! still going after the slow threshold marks its webhook slow at that
//! moment (not at the 5 s deadline), so that batches starting after it hand
//! the webhook's attempts to the slow lane; a slow-lane attempt that ends
//! within the threshold clears the mark. Each is one conditional write, on a
//! change of state only, and at most one per webhook per invocation.

use std::collections::HashSet;
use std::sync::Mutex;

use shared::delivery::{Attempt, Outcome};
use shared::store::Store;
use shared::webhook::now_utc;
use shared::{Lane, Webhook, WebhookId};

use crate::Dispatcher;

/// The marks this invocation has already written (or tried to).
#[derive(Default)]
pub struct Marks {
    written: Mutex<HashSet<WebhookId>>,
}

impl Marks {
    /// True the first time this invocation asks for `id`.
    fn first(&self, id: WebhookId) -> bool {
        self.written
            .lock()
            .map(|mut w| w.insert(id))
            .unwrap_or(false)
    }

    /// Makes the attempt; on the main lane, marks the webhook slow as soon
    /// as the attempt outlasts the threshold, while it goes on.
    pub async fn watch<S: Store>(
        &self,
        d: &Dispatcher<S>,
        webhook: &Webhook,
        lane: Lane,
        attempt: impl Future<Output = Attempt>,
    ) -> Attempt {
        let watched = lane == Lane::Main
            && webhook.slow_since.is_none()
            && d.requeue.has_slow_lane();
        if !watched {
            return attempt.await;
        }
        let mut attempt = std::pin::pin!(attempt);
        match tokio::time::timeout(d.slow_threshold, &mut attempt).await {
            Ok(done) => done,
            Err(_) => {
                let (done, ()) =
                    futures_util::future::join(attempt, self.set(d, webhook, true)).await;
                done
            }
        }
    }

    /// After a slow-lane attempt: an answer (any answer, or a refusal)
    /// within the threshold means the endpoint no longer holds a lane.
    pub async fn after<S: Store>(
        &self,
        d: &Dispatcher<S>,
        webhook: &Webhook,
        lane: Lane,
        attempt: &Attempt,
    ) {
        let quick = attempt.outcome != Outcome::Timeout
            && u128::from(attempt.duration_ms) < d.slow_threshold.as_millis();
        if lane == Lane::Slow && quick && webhook.slow_since.is_some() {
            self.set(d, webhook, false).await;
        }
    }

    async fn set<S: Store>(&self, d: &Dispatcher<S>, webhook: &Webhook, slow: bool) {
        if !self.first(webhook.id) {
            return;
        }
        let since = slow.then(now_utc);
        match d.store.set_slow(&webhook.tenant_id, webhook.id, since).await {
            Ok(true) if slow => tracing::warn!(
                webhook_id = %webhook.id,
                tenant_id = %webhook.tenant_id,
                threshold_ms = d.slow_threshold.as_millis() as u64,
                "webhook marked slow: its attempts go through the slow lane"
            ),
            Ok(true) => tracing::info!(
                webhook_id = %webhook.id,
                tenant_id = %webhook.tenant_id,
                "webhook no longer slow: its attempts go through the main lane"
            ),
            // Someone else changed it first, or the webhook is gone.
            Ok(false) => {}
            Err(e) => tracing::error!(
                webhook_id = %webhook.id,
                error = %e,
                "writing the slow-lane mark failed"
            ),
        }
    }
}
