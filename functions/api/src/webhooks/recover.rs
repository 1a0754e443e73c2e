//! `POST /webhooks/{id}/recover` (resend what failed in a window, or count
//! it first with `dry_run`) and `GET /webhooks/{id}/recovery` (how the
//! webhook's recovery stands). The work is [`shared::recovery`]'s.

use std::time::Duration;

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use shared::audit::{Action, Author, Target, TargetKind};
use shared::recovery::{Counts, EVENTS_PER_CALL, Mode, Next, Recovery, RecoveryState, Window};
use shared::requeue::Requeue;
use shared::store::{Allowance, Conditional, RecoveryStore, RecoveryWrite, Store};
use shared::webhook::now_utc;
use shared::{Status, TenantId, Webhook, WebhookId};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::rfc3339;
use crate::{ApiError, App, allowance, body, response};

/// How long a call works on its window before it answers and hands the rest
/// on: well inside the api function's 10 s timeout.
const CALL_BUDGET: Duration = Duration::from_secs(4);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecoverRequest {
    since: String,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

/// A recovery, as `POST …/recover` answers (202) and `GET …/recovery` shows.
#[derive(Serialize)]
struct RecoveryView<'a> {
    recovery_id: &'a str,
    webhook_id: String,
    since: String,
    until: String,
    started_at: String,
    /// `running`, `done`, or `stopped` (see `stopped_because`).
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stopped_because: Option<&'a str>,
    #[serde(flatten)]
    counts: Counts,
}

/// A dry run's count (200): what a recovery would queue now.
#[derive(Serialize)]
struct Preview {
    dry_run: bool,
    since: String,
    until: String,
    events_checked: u64,
    would_queue: u64,
    not_kept: u64,
    /// Not delivered, but the tenant deleted the event's data.
    payload_deleted: u64,
    /// Not delivered, but an automatic retry is scheduled: left to it.
    retry_pending: u64,
    /// False when the window holds more than one call checks: the count is
    /// then of its newest `events_checked` events.
    complete: bool,
}

fn view(state: &RecoveryState, now: i64) -> RecoveryView<'_> {
    let status = match (&state.stopped, state.done) {
        (Some(_), _) => "stopped",
        (None, true) => "done",
        // A recovery whose chain died is not running any more.
        (None, false) if state.running(now) => "running",
        (None, false) => "stopped",
    };
    RecoveryView {
        recovery_id: &state.recovery_id,
        webhook_id: state.webhook_id.to_string(),
        since: rfc3339::format(state.window.since),
        until: rfc3339::format(state.window.until),
        started_at: rfc3339::format(state.started_at),
        status,
        stopped_because: state.stopped.as_deref().or(match status {
            "stopped" => Some("it made no progress for 15 minutes"),
            _ => None,
        }),
        counts: state.counts,
    }
}

/// `since ≤ t < until`, until by default now, within the event retention.
fn window_of(
    input: &RecoverRequest,
    now: OffsetDateTime,
    retention_days: u32,
) -> Result<Window, ApiError> {
    let since = rfc3339::parse("since", &input.since)?;
    let until = match &input.until {
        Some(value) => rfc3339::parse("until", value)?,
        None => now,
    };
    if since >= until {
        return Err(ApiError::invalid(
            "until",
            "until: must be later than since (the window is since ≤ timestamp < until; until defaults to now)",
        ));
    }
    let oldest = now - time::Duration::days(i64::from(retention_days));
    if since < oldest {
        return Err(ApiError::invalid(
            "since",
            format!(
                "since: events are kept {retention_days} days, so a recovery starts at most then ({})",
                rfc3339::format(oldest)
            ),
        ));
    }
    Ok(Window { since, until })
}

/// `POST /webhooks/{id}/recover`: resends every kept event of the window
/// that the webhook subscribes to and whose last attempt to it did not end
/// `delivered`; with `dry_run`, only counts them.
pub async fn start<S: Store>(
    app: &App<S>,
    webhook: Webhook,
    req: &Request,
    author: &Author,
) -> Result<Response<Body>, ApiError> {
    let input: RecoverRequest = body::json(req)?;
    let now = now_utc();
    let window = window_of(&input, now, app.settings.event_retention_days)?;
    let (tenant, id) = (webhook.tenant_id.clone(), webhook.id);
    let recovery = Recovery::new(&app.store, &app.requeue, &app.settings);
    let deadline = Some(Instant::now() + CALL_BUDGET);
    if !input.dry_run {
        if matches!(app.requeue, Requeue::Disabled) {
            return Err(ApiError::QueueUnavailable);
        }
        if webhook.status != Status::Active {
            return Err(ApiError::WebhookInactive);
        }
    }
    if input.dry_run {
        // A call's worth of checks from the tenant's budget per minute: a
        // dry run reads as much as a recovery.
        allowance::take(app, &tenant, Allowance::RecoveryChecks, EVENTS_PER_CALL).await?;
        let run = recovery
            .run(
                &webhook,
                &window,
                None,
                Mode::Preview,
                EVENTS_PER_CALL,
                deadline,
            )
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let preview = Preview {
            dry_run: true,
            since: rfc3339::format(window.since),
            until: rfc3339::format(window.until),
            events_checked: run.counts.events_checked,
            would_queue: run.counts.selected,
            not_kept: run.counts.not_kept,
            payload_deleted: run.counts.payload_deleted,
            retry_pending: run.counts.retry_pending,
            complete: run.next == Next::Done,
        };
        return Ok(response::json(StatusCode::OK, &preview));
    }
    let mut state = RecoveryState::start(tenant, id, window, now);
    let unix = now.unix_timestamp();
    let entry = author.entry(
        Action::RecoveryStarted,
        Target::new(TargetKind::Webhook, id),
        json!({
            "recovery_id": state.recovery_id,
            "since": rfc3339::format(state.window.since),
            "until": rfc3339::format(state.window.until),
        }),
    );
    let start = RecoveryWrite::Start {
        now: unix,
        entry: &entry,
    };
    let started = app.store.save_recovery(&state, start).await?;
    if started == Conditional::Refused {
        let running = app.store.recovery(&state.tenant_id, id).await?;
        return Err(match running {
            Some(r) => ApiError::RecoveryRunning {
                recovery_id: r.recovery_id,
                since: rfc3339::format(r.window.since),
                until: rfc3339::format(r.window.until),
            },
            None => ApiError::Conflict,
        });
    }
    // The checks are taken once the recovery holds the webhook's lock: a
    // call refused with 409 costs none of them.
    if let Err(spent) = allowance::take(
        app,
        &state.tenant_id,
        Allowance::RecoveryChecks,
        EVENTS_PER_CALL,
    )
    .await
    {
        state.stop(
            "the tenant's recovery checks for this minute were spent",
            unix,
        );
        app.store
            .save_recovery(&state, RecoveryWrite::Advance)
            .await?;
        return Err(spent);
    }
    let ran = recovery
        .run(
            &webhook,
            &window,
            None,
            Mode::Queue,
            EVENTS_PER_CALL,
            deadline,
        )
        .await;
    let handed = match &ran {
        Ok(run) => recovery.hand_on(&mut state, run).await.map(|_| ()),
        Err(_) => Ok(()),
    };
    if let Some(e) = ran.err().or(handed.err()) {
        // What was queued stands (a new call skips it while it is pending);
        // the lock is released.
        state.stop("an error interrupted it; start it again", unix);
        if let Err(save) = app
            .store
            .save_recovery(&state, RecoveryWrite::Advance)
            .await
        {
            tracing::error!(recovery_id = %state.recovery_id, error = %save, "saving a stopped recovery failed");
        }
        return Err(ApiError::Internal(e.to_string()));
    }
    state.log("recovery started");
    Ok(response::json(
        StatusCode::ACCEPTED,
        &view(&state, now_utc().unix_timestamp()),
    ))
}

/// `GET /webhooks/{id}/recovery`: the webhook's recovery, the one running
/// or the last one.
pub async fn status<S: RecoveryStore>(
    app: &App<S>,
    tenant: TenantId,
    id: WebhookId,
) -> Result<Response<Body>, ApiError> {
    let state = app
        .store
        .recovery(&tenant, id)
        .await?
        .ok_or(ApiError::RecoveryNotFound)?;
    Ok(response::json(
        StatusCode::OK,
        &view(&state, now_utc().unix_timestamp()),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use shared::delivery::{Attempt, Outcome};
    use shared::delivery_log::DeliveryRecord;
    use shared::event::Event;
    use shared::event_log::StoredEvent;
    use shared::slow_lane::{RecoveryMessage, TargetedMessage};
    use shared::{EventType, Settings};
    use time::Duration as Span;

    use super::*;
    use crate::rfc3339::format as rfc3339;
    use crate::testing::{Reply, app_with, send};
    use shared::store::prelude::*;

    type Sent = Arc<Mutex<Vec<(String, Duration)>>>;
    /// An event of the outage test: id, type, minutes ago, attempts.
    type Case<'a> = (&'a str, EventType, i64, &'a [(WebhookId, Outcome)]);

    async fn recovering_app(per_minute: u32) -> (App<shared::store::MemoryStore>, String, Sent) {
        let sent = Sent::default();
        let (app, key) = app_with(Settings {
            redeliveries_per_minute: per_minute,
            ..crate::testing::settings()
        })
        .await;
        (app.with_requeue(Requeue::Memory(sent.clone())), key, sent)
    }

    async fn webhook(app: &App<shared::store::MemoryStore>, key: &str, events: &str) -> WebhookId {
        let body = format!(r#"{{"url":"https://hooks.example.com/x","events":{events}}}"#);
        let created = send(app, Some(key), "POST", "/webhooks", Some(&body)).await;
        created.body["id"].as_str().unwrap().parse().unwrap()
    }

    /// Keeps an event of `tenant` at `at`, and records `outcomes` as its
    /// attempts 1, 2, … to `webhook`, a second apart.
    async fn event(
        app: &App<shared::store::MemoryStore>,
        tenant: &str,
        id: &str,
        event_type: EventType,
        at: OffsetDateTime,
        attempts: &[(WebhookId, Outcome)],
    ) {
        let event = Event::from_json(&format!(
            r#"{{"id":"{id}","tenant_id":"{tenant}","type":"{}","timestamp":"{}","data":{{"n":1}}}}"#,
            event_type.as_str(),
            rfc3339(at)
        ))
        .unwrap();
        app.store
            .put_event(&StoredEvent::new(
                &event,
                at,
                shared::event_log::Retention::WEEK,
            ))
            .await
            .unwrap();
        for (n, (webhook, outcome)) in attempts.iter().enumerate() {
            let n = u32::try_from(n).unwrap() + 1;
            record(
                app,
                &event,
                *webhook,
                n,
                at + Span::seconds(n.into()),
                *outcome,
            )
            .await;
        }
    }

    async fn record(
        app: &App<shared::store::MemoryStore>,
        event: &Event,
        webhook: WebhookId,
        attempt: u32,
        at: OffsetDateTime,
        outcome: Outcome,
    ) {
        let record = DeliveryRecord::new(
            event.tenant_id.clone(),
            webhook,
            event.id.clone(),
            event.event_type,
            at,
            Attempt::bare(outcome, None, 5),
            7,
        )
        .with_attempt(attempt, attempt >= shared::retry::FIRST_MANUAL_ATTEMPT);
        app.store.record_delivery(&record).await.unwrap();
    }

    /// The targeted messages queued since the last call: (event id, webhook, attempt).
    fn drain(sent: &Sent) -> Vec<(String, WebhookId, u32)> {
        let mut queued: Vec<_> = sent
            .lock()
            .unwrap()
            .drain(..)
            .filter_map(|(body, _)| TargetedMessage::from_json(&body).ok())
            .map(|m| {
                assert!(m.target.manual);
                (
                    m.event.id.to_string(),
                    m.target.webhook_id,
                    m.target.attempt,
                )
            })
            .collect();
        queued.sort();
        queued
    }

    async fn recover(
        app: &App<shared::store::MemoryStore>,
        key: &str,
        id: WebhookId,
        body: &str,
    ) -> Reply {
        send(
            app,
            Some(key),
            "POST",
            &format!("/webhooks/{id}/recover"),
            Some(body),
        )
        .await
    }

    async fn recovery_of(app: &App<shared::store::MemoryStore>, key: &str, id: WebhookId) -> Reply {
        send(
            app,
            Some(key),
            "GET",
            &format!("/webhooks/{id}/recovery"),
            None,
        )
        .await
    }

    /// After an outage, one call queues every event whose
    /// last attempt failed, once, as a manual attempt of the same event (so
    /// the same `webhook-id`); not those delivered, not those never meant
    /// for the webhook, not another tenant's; a second call queues nothing
    /// while those attempts are pending, and again once they failed.
    #[tokio::test]
    async fn one_call_resends_what_failed_and_a_second_queues_nothing_new() {
        use Outcome::*;
        let (app, key, sent) = recovering_app(600).await;
        let hook = webhook(&app, &key, r#"["async.completed"]"#).await;
        let other = webhook(&app, &key, r#"["async.completed","async.errored"]"#).await;
        let now = now_utc();
        let t = |minutes: i64| now - Span::minutes(minutes);
        let completed = EventType::AsyncCompleted;
        let (errored, theirs) = (EventType::AsyncErrored, WebhookId::generate());
        // (id, type, minutes ago, attempts), all of acme's.
        let cases: [Case; 8] = [
            ("evt_before", completed, 50, &[(hook, Delivered)]),
            (
                "evt_down1",
                completed,
                40,
                &[(hook, ConnectError), (other, Delivered)],
            ),
            ("evt_down2", completed, 35, &[(hook, Timeout)]),
            (
                "evt_retried",
                completed,
                30,
                &[(hook, HttpError), (hook, Delivered)],
            ),
            (
                "evt_later",
                completed,
                25,
                &[(hook, Delivered), (hook, HttpError)],
            ),
            ("evt_never", completed, 20, &[]),
            ("evt_unsub", errored, 15, &[(other, HttpError)]),
            ("evt_old", completed, 90, &[(hook, ConnectError)]),
        ];
        for (id, event_type, minutes_ago, attempts) in cases {
            event(&app, "acme", id, event_type, t(minutes_ago), attempts).await;
        }
        // Another tenant, the same event id, a failed attempt to a webhook of its own.
        let failed = [(theirs, ConnectError)];
        event(&app, "globex", "evt_down1", completed, t(40), &failed).await;

        let window = format!(r#"{{"since":"{}"}}"#, rfc3339(t(60)));
        let preview = recover(
            &app,
            &key,
            hook,
            &window.replace('}', r#","dry_run":true}"#),
        )
        .await;
        assert_eq!(preview.status, 200, "{}", preview.body);
        assert_eq!(preview.body["would_queue"], 3);
        assert_eq!(preview.body["events_checked"], 7);
        assert_eq!(preview.body["complete"], true);
        assert!(drain(&sent).is_empty(), "a dry run queues nothing");

        let first = recover(&app, &key, hook, &window).await;
        assert_eq!(first.status, 202, "{}", first.body);
        assert_eq!(
            (first.body["queued"].as_u64(), first.body["status"].as_str()),
            (Some(3), Some("done"))
        );
        let resent = drain(&sent);
        let ids: Vec<&str> = resent.iter().map(|(e, _, _)| e.as_str()).collect();
        assert_eq!(ids, ["evt_down1", "evt_down2", "evt_later"]);
        assert!(resent.iter().all(|(_, w, n)| *w == hook && *n == 101));

        // The same call while those attempts are pending: nothing new.
        let again = recover(&app, &key, hook, &window).await;
        assert_eq!(again.status, 202, "{}", again.body);
        assert_eq!(
            (
                again.body["queued"].as_u64(),
                again.body["already_pending"].as_u64()
            ),
            (Some(0), Some(3))
        );
        assert!(drain(&sent).is_empty());

        // One resend delivered, one failed again: only that one is queued.
        let down1 = Event::from_json(&format!(
            r#"{{"id":"evt_down1","tenant_id":"acme","type":"async.completed","timestamp":"{}","data":{{}}}}"#,
            rfc3339(t(40))
        ))
        .unwrap();
        let mut down2 = down1.clone();
        down2.id = shared::event::EventId::parse("evt_down2").unwrap();
        record(&app, &down1, hook, 101, now, Delivered).await;
        record(&app, &down2, hook, 101, now, ConnectError).await;
        let third = recover(&app, &key, hook, &window).await;
        assert_eq!(
            (
                third.body["queued"].as_u64(),
                third.body["already_pending"].as_u64()
            ),
            (Some(1), Some(1))
        );
        assert_eq!(drain(&sent), [("evt_down2".to_owned(), hook, 102)]);

        let status = recovery_of(&app, &key, hook).await;
        assert_eq!(status.status, 200);
        assert_eq!(status.body["recovery_id"], third.body["recovery_id"]);
        // Another tenant's webhook is not found, and its events were never read.
        let foreign = recover(&app, &key, theirs, &window).await;
        assert_eq!((foreign.status, foreign.code()), (404, "webhook_not_found"));
    }

    /// A window larger than one call checks: the call answers after
    /// EVENTS_PER_CALL events and hands the rest on to the slow lane; a
    /// second recovery of the webhook meanwhile is refused, naming the first.
    #[tokio::test]
    async fn a_large_window_is_handed_on_and_holds_the_webhooks_lock() {
        let (app, key, sent) = recovering_app(10_000).await;
        let hook = webhook(&app, &key, r#"["async.completed"]"#).await;
        let now = now_utc();
        for i in 0..1_050 {
            let at = now - Span::seconds(i + 10);
            let id = format!("evt_{i:05}");
            event(
                &app,
                "acme",
                &id,
                EventType::AsyncCompleted,
                at,
                &[(hook, Outcome::HttpError)],
            )
            .await;
        }
        let window = format!(r#"{{"since":"{}"}}"#, rfc3339(now - Span::hours(1)));
        let first = recover(&app, &key, hook, &window).await;
        assert_eq!(first.status, 202, "{}", first.body);
        assert_eq!(first.body["status"], "running");
        assert_eq!(first.body["events_checked"], EVENTS_PER_CALL);
        assert_eq!(first.body["queued"], EVENTS_PER_CALL);
        let rest: Vec<RecoveryMessage> = sent
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(body, _)| RecoveryMessage::from_json(body).ok())
            .collect();
        assert_eq!(rest.len(), 1, "the rest of the window is on the slow lane");
        assert_eq!(
            rest[0].recover.recovery_id,
            first.body["recovery_id"].as_str().unwrap()
        );
        assert!(rest[0].recover.after.is_some());

        let second = recover(&app, &key, hook, &window).await;
        assert_eq!((second.status, second.code()), (409, "recovery_running"));
        assert!(
            second.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(first.body["recovery_id"].as_str().unwrap())
        );
    }

    /// The allowance paces a recovery: what is left waits for the next minute.
    #[tokio::test]
    async fn a_spent_allowance_delays_the_rest() {
        let (app, key, sent) = recovering_app(5).await;
        let hook = webhook(&app, &key, r#"["async.completed"]"#).await;
        let now = now_utc();
        for i in 0..12 {
            let id = format!("evt_{i:02}");
            event(
                &app,
                "acme",
                &id,
                EventType::AsyncCompleted,
                now - Span::seconds(i + 10),
                &[(hook, Outcome::Timeout)],
            )
            .await;
        }
        let window = format!(r#"{{"since":"{}"}}"#, rfc3339(now - Span::hours(1)));
        let first = recover(&app, &key, hook, &window).await;
        assert_eq!(first.status, 202, "{}", first.body);
        assert_eq!(
            (first.body["queued"].as_u64(), first.body["status"].as_str()),
            (Some(5), Some("running"))
        );
        let delays: Vec<Duration> = sent
            .lock()
            .unwrap()
            .iter()
            .filter(|(body, _)| RecoveryMessage::from_json(body).is_ok())
            .map(|(_, delay)| *delay)
            .collect();
        assert_eq!(delays.len(), 1);
        assert!(
            delays[0] > Duration::ZERO && delays[0] <= Duration::from_secs(60),
            "{delays:?}"
        );
    }

    /// A tenant's recoveries check at most RECOVERY_CHECKS_PER_MINUTE events
    /// a minute, dry runs included: past it, 429 with when to come back.
    #[tokio::test]
    async fn checks_beyond_the_tenants_budget_are_refused() {
        let (app, key, sent) = recovering_app(600).await;
        let hook = webhook(&app, &key, r#"["async.completed"]"#).await;
        let tenant = TenantId::parse("acme").unwrap();
        let now = now_utc().unix_timestamp();
        let allowance = Allowance::RecoveryChecks;
        let limit = app.settings.recovery_checks_per_minute;
        // All but 999 of this minute's and the next one's (the call may fall in either).
        for window in [allowance.window_of(now), allowance.window_of(now) + 1] {
            assert!(
                app.store
                    .take_allowance(&tenant, allowance, window, limit - 999, limit)
                    .await
                    .unwrap()
                    .applied()
            );
        }
        let window = format!(
            r#"{{"since":"{}","dry_run":true}}"#,
            rfc3339(now_utc() - Span::hours(1))
        );
        let refused = recover(&app, &key, hook, &window).await;
        assert_eq!(
            (refused.status, refused.code()),
            (429, "recovery_limit_reached"),
            "{}",
            refused.body
        );
        let retry_after: u64 = refused.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry_after));
        assert!(sent.lock().unwrap().is_empty());
        // Another tenant's budget is its own: a control that the budget, not the call, refused.
        let globex = TenantId::parse("globex").unwrap();
        let (other_key, _) = shared::key_lifecycle::issue(
            &app.store,
            globex,
            "t".into(),
            shared::api_key::Scope::Full,
            None,
        )
        .await
        .unwrap();
        let theirs = webhook(&app, &other_key, r#"["async.completed"]"#).await;
        assert_eq!(recover(&app, &other_key, theirs, &window).await.status, 200);
    }

    #[tokio::test]
    async fn bad_windows_and_inactive_webhooks_are_refused_by_name() {
        let (app, key, _) = recovering_app(600).await;
        let hook = webhook(&app, &key, r#"["async.completed"]"#).await;
        let now = now_utc();
        let cases = [
            (r#"{}"#.to_owned(), "since"),
            (r#"{"since":"yesterday"}"#.to_owned(), "since"),
            (
                format!(r#"{{"since":"{}"}}"#, rfc3339(now - Span::days(8))),
                "since",
            ),
            (
                format!(
                    r#"{{"since":"{}","until":"{}"}}"#,
                    rfc3339(now),
                    rfc3339(now - Span::hours(1))
                ),
                "until",
            ),
            (
                format!(r#"{{"since":"{}","until":"soon"}}"#, rfc3339(now)),
                "until",
            ),
            (
                format!(r#"{{"since":"{}","extra":1}}"#, rfc3339(now)),
                "extra",
            ),
        ];
        for (body, field) in cases {
            let reply = recover(&app, &key, hook, &body).await;
            assert_eq!(reply.status, 400, "{body}: {}", reply.body);
            assert_eq!(
                reply.body["error"]["field"], field,
                "{body}: {}",
                reply.body
            );
        }
        send(
            &app,
            Some(&key),
            "PATCH",
            &format!("/webhooks/{hook}"),
            Some(r#"{"status":"inactive"}"#),
        )
        .await;
        let window = format!(r#"{{"since":"{}"}}"#, rfc3339(now - Span::hours(1)));
        let inactive = recover(&app, &key, hook, &window).await;
        assert_eq!(
            (inactive.status, inactive.code()),
            (409, "webhook_inactive")
        );
        let none = recovery_of(&app, &key, hook).await;
        assert_eq!((none.status, none.code()), (404, "recovery_not_found"));
    }
}
