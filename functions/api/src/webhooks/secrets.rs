//! `POST /webhooks/{id}/token` and `POST /webhooks/{id}/signing-secret`:
//! a secret replaced by a fresh one, shown in full this once.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::audit::{Action, Author};
use shared::store::WebhookStore;
use shared::webhook::now_utc;
use shared::{Token, WebhookId};

use super::read_change_write;
use crate::views::{Secrets, WebhookView};
use crate::{ApiError, App, body, response};

/// Which secret a rotation replaces.
#[derive(Clone, Copy)]
pub enum Rotate {
    Token,
    SigningSecret,
}

/// Replaces a secret with a fresh one and shows it, in full, this once.
pub async fn rotate<S: WebhookStore>(
    app: &App<S>,
    author: &Author,
    id: WebhookId,
    req: &Request,
    which: Rotate,
) -> Result<Response<Body>, ApiError> {
    body::none(req)?;
    // When the previous signing secret still signs: a second rotation then
    // would drop it at once, and receivers still verifying with it would
    // start refusing deliveries.
    let overlapping = std::sync::Mutex::new(None);
    let action = match which {
        Rotate::Token => Action::WebhookTokenRotated,
        Rotate::SigningSecret => Action::WebhookSigningSecretRotated,
    };
    let webhook = read_change_write(app, (action, author), id, |webhook| {
        match which {
            Rotate::Token => webhook.token = Token::generate(),
            Rotate::SigningSecret => {
                let now = now_utc();
                let until = webhook
                    .previous_signing_secret
                    .as_ref()
                    .map(|p| p.expires_at)
                    .filter(|until| *until > now);
                if let Ok(mut slot) = overlapping.lock() {
                    *slot = until;
                }
                if until.is_some() {
                    return false;
                }
                // The old secret keeps signing too until the overlap ends.
                webhook.rotate_signing_secret(now, app.settings.secret_overlap)
            }
        }
        true
    })
    .await?;
    if let Some(until) = overlapping.into_inner().ok().flatten() {
        return Err(ApiError::RotationInProgress {
            until: shared::delivery_log::sortable_time(until),
        });
    }
    let shown = match which {
        Rotate::Token => Secrets::TOKEN,
        Rotate::SigningSecret => Secrets::SIGNING_SECRET,
    };
    Ok(response::json(
        StatusCode::OK,
        &WebhookView::new(&webhook, shown),
    ))
}
