//! What the rehearsal invokes, and what it checks: every route of the api
//! function through API Gateway events, and the dispatch function's paths
//! (a fan-out, a throttled webhook, a retry that requeues, redeliveries
//! from the slow lane, a poison message, a failing streak's notices and
//! auto-disable, a forged notice) through SQS events as the event source
//! mapping sends them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shared::event::Event;
use shared::store::DynamoStore;
use shared::{EventType, Status};
use testkit::receiver::{Behavior, Receiver};

use crate::api_gateway::{self, Coverage, Request};
use crate::runtime::{Answer, Function};
use crate::{Names, REGION};

const TENANT: &str = "rehearsal-tenant";

/// Failures and figures, printed at the end.
#[derive(Default)]
pub struct Report {
    failures: Vec<String>,
    figures: Vec<String>,
    pub logs: Vec<PathBuf>,
    /// Keys, tokens and signing secrets that no log may hold.
    pub secrets: Vec<String>,
}

impl Report {
    fn check(&mut self, ok: bool, what: impl Into<String>) {
        let what = what.into();
        if ok {
            println!("  ok    {what}");
        } else {
            println!("  FAIL  {what}");
            self.failures.push(what);
        }
    }

    fn figure(&mut self, line: String) {
        println!("  time  {line}");
        self.figures.push(line);
    }

    /// Scans the functions' logs (denied calls, secrets), prints the verdict.
    pub fn finish(mut self) -> ExitCode {
        for log in std::mem::take(&mut self.logs) {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let name = log.display().to_string();
            let denied: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("AccessDenied") || l.contains("not authorized"))
                .collect();
            for line in denied.iter().take(5) {
                println!("  denied in {name}: {}", denial(line));
            }
            self.check(denied.is_empty(), format!("{name}: no call denied by IAM"));
            let leaked = self
                .secrets
                .iter()
                .filter(|s| !s.is_empty() && text.contains(s.as_str()))
                .count();
            self.check(
                leaked == 0,
                format!("{name}: no API key, token or signing secret in the log ({leaked} found)"),
            );
        }
        if self.failures.is_empty() {
            println!("rehearsal: PASS");
            ExitCode::SUCCESS
        } else {
            println!("rehearsal: FAIL ({} checks):", self.failures.len());
            for f in &self.failures {
                println!("  - {f}");
            }
            ExitCode::FAILURE
        }
    }
}

/// What a log line says was denied: moto's message, or the line's start.
fn denial(line: &str) -> &str {
    const SAYS: &str = "is not authorized to perform: ";
    match line.find(SAYS) {
        Some(at) => {
            let from = line[..at].rfind("User: ").unwrap_or(at);
            let rest = &line[at + SAYS.len()..];
            let to = rest.find(['<', '"', '\\']).unwrap_or(rest.len());
            &line[from..at + SAYS.len() + to]
        }
        None => &line[..line.len().min(300)],
    }
}

/// Where a function's log ends now: [`no_denial_since`] reads what follows.
fn log_mark(f: &Function) -> u64 {
    std::fs::metadata(&f.log).map(|m| m.len()).unwrap_or(0)
}

/// Checks that IAM denied `f` nothing since `mark` (a scenario's calls; the
/// whole log is scanned again at the end).
fn no_denial_since(r: &mut Report, f: &Function, mark: u64, what: &str) {
    let text = std::fs::read(&f.log).unwrap_or_default();
    let from = usize::try_from(mark).unwrap_or(usize::MAX).min(text.len());
    let text = String::from_utf8_lossy(&text[from..]);
    let denied: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("AccessDenied") || l.contains("not authorized"))
        .map(denial)
        .collect();
    r.check(
        denied.is_empty(),
        format!("{what}: no call denied by IAM in {} ({denied:?})", f.name),
    );
}

/// A webhook as the rehearsal knows it.
struct Hook {
    id: String,
    token: String,
    secret: String,
}

impl Hook {
    /// A webhook stored directly (`testkit::add_webhook`).
    fn of(webhook: &shared::Webhook) -> Hook {
        Hook {
            id: webhook.id.to_string(),
            token: webhook.token.expose().to_owned(),
            secret: webhook.signing_secret.expose().to_owned(),
        }
    }
}

/// The receivers, the tenant's key, and the rehearsal's own AWS clients.
pub struct World {
    names: Names,
    sqs: aws_sdk_sqs::Client,
    store: DynamoStore,
    key: String,
    ok: Receiver,
    failing: Receiver,
    hooks: Vec<Hook>,
    /// API keys made through the API: in no log either.
    keys: Vec<String>,
    calls: u64,
    coverage: Coverage,
}

impl World {
    pub async fn new(config: &aws_config::SdkConfig, names: Names) -> Result<World, String> {
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(config), names.table.clone());
        let key = testkit::api_key_for(&store, TENANT).await;
        Ok(World {
            sqs: aws_sdk_sqs::Client::new(config),
            store,
            key,
            ok: Receiver::start(Behavior::status(200)).await,
            failing: Receiver::start(Behavior::status(500)).await,
            hooks: Vec::new(),
            keys: Vec::new(),
            calls: 0,
            coverage: Coverage::default(),
            names,
        })
    }

    pub fn secrets(&self) -> Vec<String> {
        let mut all = vec![self.key.clone()];
        all.extend(self.keys.iter().cloned());
        for h in &self.hooks {
            all.push(h.token.clone());
            all.push(h.secret.clone());
        }
        all
    }

    /// One request through the api function; checks the status.
    async fn call(
        &mut self,
        api: &mut Function,
        r: &mut Report,
        req: Request<'_>,
        want: u16,
    ) -> Option<api_gateway::Answer> {
        self.calls += 1;
        self.coverage.record(req.method, req.target);
        let what = format!("api {} {}", req.method, req.target);
        let answer = match api.invoke(&req.event(self.calls)).await {
            Ok(Answer::Response(raw)) => api_gateway::Answer::parse(&raw),
            Ok(Answer::Error(raw)) => Err(format!(
                "the function reported an error: {}",
                String::from_utf8_lossy(&raw)
            )),
            Err(e) => Err(e),
        };
        match answer {
            Ok(a) => {
                r.check(
                    a.status == want,
                    format!("{what} -> {} (want {want})", a.status),
                );
                if a.status != want {
                    println!("        body: {}", String::from_utf8_lossy(&a.body));
                }
                Some(a)
            }
            Err(e) => {
                r.check(false, format!("{what}: {e}"));
                None
            }
        }
    }

    /// One batch through the dispatch function; the ids it returns as failed.
    async fn dispatch(
        &self,
        dispatch: &mut Function,
        r: &mut Report,
        records: Vec<Value>,
        what: &str,
    ) -> Option<Vec<String>> {
        let answer = dispatch.invoke(&json!({ "Records": records })).await;
        let raw = match answer {
            Ok(Answer::Response(raw)) => raw,
            Ok(Answer::Error(raw)) => {
                r.check(
                    false,
                    format!("dispatch {what}: error {}", String::from_utf8_lossy(&raw)),
                );
                return None;
            }
            Err(e) => {
                r.check(false, format!("dispatch {what}: {e}"));
                return None;
            }
        };
        let v: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        let Some(failures) = v["batchItemFailures"].as_array() else {
            r.check(
                false,
                format!(
                    "dispatch {what}: no batchItemFailures in {}",
                    String::from_utf8_lossy(&raw)
                ),
            );
            return None;
        };
        Some(
            failures
                .iter()
                .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
                .collect(),
        )
    }

    /// The receipts of `event_id` at the healthy receiver, checked against `hook`.
    fn receipts(&self, r: &mut Report, hook: &Hook, event_id: &str, want: usize, what: &str) {
        let got: Vec<_> = self
            .ok
            .requests()
            .into_iter()
            .filter(|q| {
                q.header("webhook-id")
                    .is_some_and(|id| id.starts_with(event_id))
            })
            .collect();
        r.check(
            got.len() == want,
            format!(
                "{what}: {} deliveries of {event_id} (want {want})",
                got.len()
            ),
        );
        let basic = format!("Basic {}", hook.token);
        let all_signed = got.iter().all(|q| {
            let (Some(id), Some(ts), Some(sig)) = (
                q.header("webhook-id"),
                q.header("webhook-timestamp"),
                q.header("webhook-signature"),
            ) else {
                return false;
            };
            let expected = testkit::standard_webhooks_signature(&hook.secret, id, ts, &q.body);
            q.header("authorization") == Some(basic.as_str())
                && sig.split(' ').any(|s| s == expected)
        });
        r.check(
            all_signed,
            format!("{what}: each carries the Basic token and a valid signature"),
        );
    }

    /// Messages waiting on the slow lane's queue, as SQS records.
    async fn slow_lane_records(&self, want: usize) -> Vec<Value> {
        let mut records = Vec::new();
        for _ in 0..5 {
            if records.len() >= want {
                break;
            }
            let Ok(out) = self
                .sqs
                .receive_message()
                .queue_url(&self.names.slow_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .send()
                .await
            else {
                break;
            };
            for m in out.messages.unwrap_or_default() {
                records.push(self.slow_lane_record(m));
            }
        }
        records
    }

    /// A message received from the slow lane's queue, as the event source
    /// mapping hands it over.
    fn slow_lane_record(&self, m: aws_sdk_sqs::types::Message) -> Value {
        let attributes: serde_json::Map<String, Value> = m
            .attributes
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
            .collect();
        json!({
            "messageId": m.message_id.unwrap_or_default(),
            "receiptHandle": m.receipt_handle.unwrap_or_default(),
            "body": m.body.unwrap_or_default(),
            "attributes": attributes,
            "messageAttributes": {},
            "md5OfBody": m.md5_of_body.unwrap_or_default(),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.names.slow_arn,
            "awsRegion": REGION,
        })
    }

    /// The slow lane's messages of `tenant` (an envelope of its, or a
    /// targeted message with its event), as SQS records: waits up to 8 s
    /// for `want` of them, then looks once more, without waiting, for any
    /// beyond. Other tenants' messages (an earlier scenario's retry coming
    /// due) are made visible again as they were.
    async fn slow_lane_records_of(&self, tenant: &str, want: usize) -> Vec<Value> {
        let mut records = Vec::new();
        let mut others = Vec::new();
        for _ in 0..8 {
            let enough = records.len() >= want;
            let Ok(out) = self
                .sqs
                .receive_message()
                .queue_url(&self.names.slow_url)
                .max_number_of_messages(10)
                .wait_time_seconds(if enough { 0 } else { 1 })
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .send()
                .await
            else {
                break;
            };
            let mut more = 0;
            for m in out.messages.unwrap_or_default() {
                let body: Value =
                    serde_json::from_str(m.body().unwrap_or_default()).unwrap_or(Value::Null);
                let of = body["tenant_id"]
                    .as_str()
                    .or(body["event"]["tenant_id"].as_str());
                if of == Some(tenant) {
                    records.push(self.slow_lane_record(m));
                    more += 1;
                } else if let Some(handle) = m.receipt_handle {
                    others.push(handle);
                }
            }
            if enough && more == 0 {
                break;
            }
        }
        for handle in others {
            let _ = self
                .sqs
                .change_message_visibility()
                .queue_url(&self.names.slow_url)
                .receipt_handle(handle)
                .visibility_timeout(0)
                .send()
                .await;
        }
        records
    }

    /// Messages on the slow lane's queue that wait for their delay.
    async fn delayed_on_slow_lane(&self) -> u64 {
        let attribute = aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed;
        self.sqs
            .get_queue_attributes()
            .queue_url(&self.names.slow_url)
            .attribute_names(attribute.clone())
            .send()
            .await
            .ok()
            .and_then(|o| o.attributes)
            .and_then(|a| a.get(&attribute).and_then(|v| v.parse().ok()))
            .unwrap_or(0)
    }
}

/// A record as the event source mapping hands over a producer's message.
fn record(names: &Names, id: &str, body: &str) -> Value {
    json!({
        "messageId": id,
        "receiptHandle": format!("AQEB{id}"),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1795798800000",
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": "1795798800001"
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": names.events_arn,
        "awsRegion": REGION
    })
}

/// The job every rehearsal event belongs to (`GET /events?subject=`).
const SUBJECT: &str = "rehearsal-job";

fn events(kind: EventType, n: usize) -> Vec<(Event, String)> {
    (0..n)
        .map(|i| {
            let event = shared::emit::NewEvent {
                id: None,
                tenant_id: TENANT.to_owned(),
                event_type: kind.as_str().to_owned(),
                timestamp: None,
                subject: Some(SUBJECT.to_owned()),
                data: json!({ "n": i }),
            }
            .into_event()
            .expect("a valid event");
            let json = event.to_json();
            (event, json)
        })
        .collect()
}

fn cold(r: &mut Report, f: &Function, what: &str, first_answer: Duration) {
    if let Some(next) = f.first_next() {
        let init = next.duration_since(f.started);
        r.figure(format!(
            "{}: exec to first /next {:.1} ms; exec to first response ({what}) {:.1} ms",
            f.name,
            init.as_secs_f64() * 1e3,
            (init + first_answer).as_secs_f64() * 1e3
        ));
    }
}

fn warm(r: &mut Report, f: &Function, what: &str, answer: Duration) {
    r.figure(format!(
        "{}: a warm invocation ({what}) {:.1} ms",
        f.name,
        answer.as_secs_f64() * 1e3
    ));
}

/// Creates a webhook through the api; returns it.
async fn create(
    w: &mut World,
    api: &mut Function,
    r: &mut Report,
    url: String,
    events: &[&str],
    retry: &str,
) -> Option<Hook> {
    let body = json!({ "url": url, "events": events, "retry_policy": retry });
    let key = w.key.clone();
    let a = w
        .call(
            api,
            r,
            Request::new("POST", "/webhooks", &key).json(&body),
            201,
        )
        .await?;
    let v = a.json();
    Some(Hook {
        id: v["id"].as_str()?.to_owned(),
        token: v["token"].as_str()?.to_owned(),
        secret: v["signing_secret"].as_str()?.to_owned(),
    })
}

/// Every route of the api, and every path of the dispatcher.
/// `disabling` is the dispatch function again, deployed with a 2 s
/// auto-disable period (`AutoDisableAfterSeconds`).
pub async fn api_and_dispatch(
    w: &mut World,
    api: &mut Function,
    dispatch: &mut Function,
    disabling: &mut Function,
    r: &mut Report,
) {
    let key = w.key.clone();
    println!("api function:");
    let asked = Instant::now();
    w.call(api, r, Request::new("GET", "/webhooks", &key), 200)
        .await;
    cold(r, api, "GET /webhooks", asked.elapsed());
    let asked = Instant::now();
    w.call(api, r, Request::new("GET", "/webhooks", &key), 200)
        .await;
    warm(r, api, "GET /webhooks", asked.elapsed());
    let mut no_key = Request::new("GET", "/webhooks", &key);
    no_key.key = None;
    w.call(api, r, no_key, 401).await;
    let (ok_url, failing_url) = (w.ok.url("/ok"), w.failing.url("/failing"));
    let Some(hook) = create(w, api, r, ok_url, &["async.completed"], "none").await else {
        return;
    };
    let Some(retried) = create(w, api, r, failing_url, &["async.errored"], "exponential").await
    else {
        return;
    };
    // A body sent base64-encoded, as API Gateway does for binary media.
    let spare = json!({ "url": w.ok.url("/spare"), "events": ["factx.query"] });
    let mut base64 = Request::new("POST", "/webhooks", &key).json(&spare);
    base64.base64 = true;
    let spare_id = w
        .call(api, r, base64, 201)
        .await
        .and_then(|a| a.json()["id"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut bad = Request::new("POST", "/webhooks", &key);
    bad.body = Some(b"{\"url\": ".to_vec());
    bad.content_type = Some("application/json");
    w.call(api, r, bad, 400).await;
    let page = w
        .call(api, r, Request::new("GET", "/webhooks?limit=1", &key), 200)
        .await
        .map(|a| a.json());
    let cursor = page
        .as_ref()
        .and_then(|p| p["next_cursor"].as_str().map(str::to_owned));
    r.check(
        cursor.is_some(),
        "GET /webhooks?limit=1 returns a next_cursor",
    );
    if let Some(cursor) = cursor {
        let target = format!("/webhooks?limit=1&cursor={cursor}");
        w.call(api, r, Request::new("GET", &target, &key), 200)
            .await;
    }
    let path = format!("/webhooks/{}", hook.id);
    w.call(api, r, Request::new("GET", &path, &key), 200).await;
    w.call(
        api,
        r,
        Request::new("GET", "/webhooks/wh_01KMREHEARSAL0000000000000", &key),
        404,
    )
    .await;
    let patch = json!({ "events": ["async.completed", "flowx.completed"] });
    w.call(api, r, Request::new("PATCH", &path, &key).json(&patch), 200)
        .await;
    // A new token: the deliveries below must carry it.
    let token_path = format!("{path}/token");
    let mut hook = hook;
    if let Some(a) = w
        .call(api, r, Request::new("POST", &token_path, &key), 200)
        .await
        && let Some(token) = a.json()["token"].as_str()
    {
        w.hooks.push(Hook {
            id: hook.id.clone(),
            token: hook.token.clone(),
            secret: hook.secret.clone(),
        });
        hook.token = token.to_owned();
    }
    // A new signing secret: deliveries carry a signature with it (and one
    // with the previous secret during the overlap).
    let secret_path = format!("{path}/signing-secret");
    if let Some(a) = w
        .call(api, r, Request::new("POST", &secret_path, &key), 200)
        .await
        && let Some(secret) = a.json()["signing_secret"].as_str()
    {
        w.hooks.push(Hook {
            id: hook.id.clone(),
            token: String::new(),
            secret: hook.secret.clone(),
        });
        hook.secret = secret.to_owned();
    }
    let test_path = format!("{path}/test");
    let before = w.ok.requests().len();
    w.call(
        api,
        r,
        Request::new("POST", &test_path, &key).json(&json!({})),
        200,
    )
    .await;
    let tested = w.ok.requests().into_iter().skip(before).collect::<Vec<_>>();
    r.check(
        tested.len() == 1 && tested[0].header("webhook-test") == Some("true"),
        "the test event reached the receiver, marked webhook-test: true",
    );
    for (target, kind) in [
        ("/event-types", "application/json"),
        ("/openapi.json", "application/json"),
        ("/dashboard", "text/html"),
        ("/dashboard/app.js", "javascript"),
        ("/dashboard/app.css", "text/css"),
    ] {
        if let Some(a) = w.call(api, r, Request::new("GET", target, &key), 200).await {
            r.check(
                a.content_type.contains(kind) && !a.body.is_empty(),
                format!("GET {target} is {kind} ({})", a.content_type),
            );
        }
    }
    // The template's default: no static egress, so no addresses to allowlist.
    let egress = w
        .call(api, r, Request::new("GET", "/egress-ips", &key), 200)
        .await
        .map(|a| a.json());
    r.check(
        egress
            .as_ref()
            .is_some_and(|e| e["static"] == false && e["egress_ips"] == json!([])),
        format!("GET /egress-ips without StaticEgress: none, not static ({egress:?})"),
    );
    w.call(api, r, Request::new("GET", "/nowhere", &key), 404)
        .await;
    w.call(api, r, Request::new("PUT", "/webhooks", &key), 405)
        .await;

    println!("dispatch function:");
    let fanout = fan_out(w, dispatch, r, &hook).await;
    fan_out(w, dispatch, r, &hook).await;
    // Before the retry below: no other message waits on the slow lane
    // while the throttle's delayed ones are counted.
    throttled(w, dispatch, r).await;
    retry_requeued(w, dispatch, r).await;
    poison(w, dispatch, r).await;

    println!("api function, on what the dispatcher made:");
    let Some(event_id) = fanout else { return };
    w.call(api, r, Request::new("GET", "/events", &key), 200)
        .await;
    let event_path = format!("/events/{event_id}");
    w.call(api, r, Request::new("GET", &event_path, &key), 200)
        .await;
    let deliveries = format!("{path}/deliveries");
    let delivery_id = w
        .call(api, r, Request::new("GET", &deliveries, &key), 200)
        .await
        .and_then(|a| {
            a.json()["data"].as_array().and_then(|d| {
                d.iter()
                    .find(|x| x["event_id"] == event_id.as_str())
                    .cloned()
            })
        })
        .and_then(|d| d["id"].as_str().map(str::to_owned));
    // The webhook's health counts the fan-out's deliveries: the
    // api function reads the log's index with its own permissions.
    let stats = w
        .call(
            api,
            r,
            Request::new("GET", &format!("{path}/stats"), &key),
            200,
        )
        .await
        .map(|a| a.json());
    r.check(
        stats
            .as_ref()
            .is_some_and(|s| s["delivered"].as_u64() >= Some(1)),
        format!(
            "GET stats counts the fan-out's deliveries ({:?})",
            stats.as_ref().map(|s| s["delivered"].clone())
        ),
    );
    let redeliver = format!("{event_path}/redeliver");
    w.call(api, r, Request::new("POST", &redeliver, &key), 202)
        .await;
    match delivery_id {
        Some(id) => {
            let target = format!("{deliveries}/{id}/redeliver");
            w.call(api, r, Request::new("POST", &target, &key), 202)
                .await;
        }
        None => r.check(false, "GET deliveries lists the fan-out's delivery"),
    }
    println!("dispatch function, from the slow lane:");
    let records = w.slow_lane_records(2).await;
    r.check(
        records.len() == 2,
        format!(
            "the two redeliveries are on the slow lane ({})",
            records.len()
        ),
    );
    if let Some(failed) = w
        .dispatch(dispatch, r, records, "redeliveries from the slow lane")
        .await
    {
        r.check(
            failed.is_empty(),
            format!("redeliveries: no failures ({failed:?})"),
        );
    }
    w.receipts(r, &hook, &event_id, 3, "fan-out and two redeliveries");
    // A webhook that fails without retries: its missed event is what a
    // recovery resends. The retried webhook's event is left to its retry.
    let missed_url = w.failing.url("/missed");
    let Some(missed) = create(w, api, r, missed_url, &["flowx.errored"], "none").await else {
        return;
    };
    missed_event(w, dispatch, r).await;
    recovery(w, api, dispatch, r, &missed.id).await;
    left_to_its_retry(w, api, r, &retried.id).await;
    // After every check of the failing receiver's count.
    failing_streak(w, dispatch, disabling, r).await;
    let spare_path = format!("/webhooks/{spare_id}");
    w.call(api, r, Request::new("DELETE", &spare_path, &key), 204)
        .await;
    w.hooks.push(retried);
    w.hooks.push(hook);
    api_keys(w, api, r).await;
    data_protection(w, api, r, &event_path).await;
    audit_log(w, api, r).await;
    let missing = w.coverage.missing();
    r.check(
        missing.is_empty(),
        format!("every route of api::routes() was called (missing: {missing:?})"),
    );
}

/// The tenant's data-protection routes, last (they erase the rehearsal's
/// payloads): its settings read and written (the defaults again), the job's
/// events found by subject (GSI2, then the events' items), every payload of
/// the job deleted, and a redelivery of a deleted payload refused.
async fn data_protection(w: &mut World, api: &mut Function, r: &mut Report, event_path: &str) {
    let key = w.key.clone();
    w.call(api, r, Request::new("GET", "/settings", &key), 200)
        .await;
    let defaults = json!({"payload_retention_hours": 168, "keep_response_bodies": true});
    let patch = Request::new("PATCH", "/settings", &key).json(&defaults);
    w.call(api, r, patch, 200).await;
    let listing = format!("/events?subject={SUBJECT}&limit=100");
    let found = w
        .call(api, r, Request::new("GET", &listing, &key), 200)
        .await
        .and_then(|a| a.json()["data"].as_array().map(Vec::len));
    r.check(
        found >= Some(10),
        format!("GET /events?subject= lists the job's events ({found:?})"),
    );
    // One payload, then the job's others (in that order, so that each
    // deletion writes its audit entry).
    let payload = format!("{event_path}/payload");
    w.call(api, r, Request::new("DELETE", &payload, &key), 204)
        .await;
    let erase = format!("/subjects/{SUBJECT}/payloads");
    w.call(api, r, Request::new("DELETE", &erase, &key), 200)
        .await;
    if let Some(a) = w
        .call(api, r, Request::new("GET", event_path, &key), 200)
        .await
    {
        r.check(
            a.json()["payload"] == "deleted" && a.json().get("data").is_none(),
            "a deleted payload is gone from the event",
        );
    }
    let redeliver = format!("{event_path}/redeliver");
    w.call(api, r, Request::new("POST", &redeliver, &key), 409)
        .await;
}

/// The audit log, last: every change the rehearsal made through the api
/// function wrote its entry in the same transaction under the function's
/// policy, read back newest first with the calling key as actor; the
/// platform's disable of the failing streak's webhook was written by the
/// dispatch function's; a bad filter is named.
async fn audit_log(w: &mut World, api: &mut Function, r: &mut Report) {
    println!("api function, the audit log:");
    let key = w.key.clone();
    // A change and its undoing: two entries, each in the settings' transaction.
    for keep in [false, true] {
        let body = json!({"keep_response_bodies": keep});
        let patch = Request::new("PATCH", "/settings", &key).json(&body);
        w.call(api, r, patch, 200).await;
    }
    let Some(read) = w
        .call(
            api,
            r,
            Request::new("GET", "/audit-log?limit=100", &key),
            200,
        )
        .await
    else {
        return;
    };
    let entries = read.json()["data"].as_array().cloned().unwrap_or_default();
    let actions: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for want in [
        "webhook.created",
        "webhook.updated",
        "webhook.deleted",
        "webhook.signing_secret_rotated",
        "api_key.created",
        "api_key.revoked",
        "settings.updated",
        "event.payload_deleted",
        "event.redelivered",
        "recovery.started",
    ] {
        r.check(
            actions.contains(&want),
            format!("GET /audit-log holds {want} ({} entries)", actions.len()),
        );
    }
    let ids: Vec<&str> = entries.iter().filter_map(|e| e["id"].as_str()).collect();
    r.check(
        ids.windows(2).all(|p| p[0] > p[1]),
        "the audit log reads newest first",
    );
    r.check(
        entries
            .iter()
            .filter(|e| e["action"] == "settings.updated")
            .all(|e| e["actor"]["type"] == "api_key"),
        "a change through the API names its key as the actor",
    );
    let bad = Request::new("GET", "/audit-log?action=webhook.stolen", &key);
    w.call(api, r, bad, 400).await;
    let streak = shared::TenantId::parse(STREAK_TENANT).expect("tenant");
    let query = shared::store::AuditQuery {
        limit: 20,
        action: Some(shared::audit::Action::WebhookDisabled),
        ..Default::default()
    };
    let disabled = shared::store::AuditStore::audit_log(&w.store, &streak, &query).await;
    r.check(
        disabled.is_ok_and(|p| {
            p.items
                .iter()
                .any(|e| e.actor == shared::audit::Actor::Platform)
        }),
        "the dispatch function wrote the platform's webhook.disabled with the disable",
    );
}

/// A tenant's keys through the API: made, used (its last use written),
/// refused a write with the read scope, revoked (with and without the
/// transaction that keeps a full key), and the last full key kept.
async fn api_keys(w: &mut World, api: &mut Function, r: &mut Report) {
    println!("api function, API keys:");
    let key = w.key.clone();
    let list = w
        .call(api, r, Request::new("GET", "/api-keys", &key), 200)
        .await;
    let own = list.and_then(|a| a.json()["data"][0]["id"].as_str().map(str::to_owned));
    let mut made = Vec::new();
    for scope in ["read", "full"] {
        let body = serde_json::json!({"name": "rehearsal", "scope": scope});
        let answer = w
            .call(
                api,
                r,
                Request::new("POST", "/api-keys", &key).json(&body),
                201,
            )
            .await
            .map(|a| a.json());
        if let Some(a) = answer
            && let (Some(k), Some(id)) = (a["key"].as_str(), a["id"].as_str())
        {
            w.keys.push(k.to_owned());
            made.push((k.to_owned(), id.to_owned()));
        }
    }
    let [(read, read_id), (_, full_id)] = made.as_slice() else {
        r.check(false, "POST /api-keys made a read and a full key");
        return;
    };
    w.call(api, r, Request::new("GET", "/webhooks", read), 200)
        .await;
    let body = serde_json::json!({"url": "https://example.com/x", "events": ["factx.query"]});
    w.call(
        api,
        r,
        Request::new("POST", "/webhooks", read).json(&body),
        403,
    )
    .await;
    for id in [read_id, full_id] {
        let path = format!("/api-keys/{id}");
        w.call(api, r, Request::new("DELETE", &path, &key), 200)
            .await;
    }
    if let Some(own) = own {
        let path = format!("/api-keys/{own}");
        w.call(api, r, Request::new("DELETE", &path, &key), 409)
            .await;
    }
}

/// The dispatch function alone, on a webhook stored directly (the negative
/// control: a policy without one action must make this fail).
pub async fn dispatch_only(w: &mut World, dispatch: &mut Function, r: &mut Report) {
    let webhook = testkit::add_webhook(
        &w.store,
        TENANT,
        &w.ok.url("/ok"),
        &[EventType::AsyncCompleted],
        Status::Active,
    )
    .await;
    let hook = Hook::of(&webhook);
    println!("dispatch function:");
    fan_out(w, dispatch, r, &hook).await;
    w.hooks.push(hook);
}

/// A batch of 10 new events to one webhook: all delivered, none failed.
/// Returns the first event's id.
async fn fan_out(
    w: &World,
    dispatch: &mut Function,
    r: &mut Report,
    hook: &Hook,
) -> Option<String> {
    let batch = events(EventType::AsyncCompleted, 10);
    let records = batch
        .iter()
        .enumerate()
        .map(|(i, (_, body))| record(&w.names, &format!("fanout-{i}"), body))
        .collect();
    let asked = Instant::now();
    let failed = w
        .dispatch(dispatch, r, records, "a fan-out of 10 events")
        .await?;
    let what = "a batch of 10 events to one receiver";
    if dispatch.first_next().is_some() && dispatch.invocations() == 1 {
        cold(r, dispatch, what, asked.elapsed());
    } else {
        warm(r, dispatch, what, asked.elapsed());
    }
    r.check(
        failed.is_empty(),
        format!("fan-out: no failures ({failed:?})"),
    );
    for (event, _) in &batch {
        w.receipts(r, hook, &event.id.to_string(), 1, "fan-out");
    }
    batch.first().map(|(e, _)| e.id.to_string())
}

/// An event to a new webhook (new webhooks start on the slow lane): the
/// main lane takes its message and hands the attempt over; returns the
/// slow lane's record of it.
async fn handed_over(
    w: &World,
    dispatch: &mut Function,
    r: &mut Report,
    id: &str,
    body: &str,
    what: &str,
) -> Vec<Value> {
    let failed = w
        .dispatch(dispatch, r, vec![record(&w.names, id, body)], what)
        .await;
    r.check(
        failed.as_ref().is_some_and(Vec::is_empty),
        format!("hand-over: the message is done ({failed:?})"),
    );
    let handed = w.slow_lane_records(1).await;
    r.check(
        handed.len() == 1,
        format!(
            "hand-over: the attempt is on the slow lane ({})",
            handed.len()
        ),
    );
    handed
}

/// An event for a new webhook that answers 500 and retries: a new webhook
/// starts on the slow lane, so the main lane hands the attempt over; the
/// slow lane makes it, and its retry goes back to the slow lane's queue,
/// delayed.
async fn retry_requeued(w: &World, dispatch: &mut Function, r: &mut Report) {
    let (_, body) = testkit::envelope(TENANT, EventType::AsyncErrored, json!({"n": 1}));
    let handed = handed_over(
        w,
        dispatch,
        r,
        "retry-1",
        &body,
        "an event to a new webhook",
    )
    .await;
    let before = w.delayed_on_slow_lane().await;
    let failed = w
        .dispatch(dispatch, r, handed, "the slow lane's attempt, answered 500")
        .await;
    r.check(
        failed.as_ref().is_some_and(Vec::is_empty),
        format!("retry: the message is done, its retry queued ({failed:?})"),
    );
    r.check(
        w.failing.requests().len() == 1,
        format!(
            "retry: the failing receiver was called once ({})",
            w.failing.requests().len()
        ),
    );
    let after = w.delayed_on_slow_lane().await;
    r.check(
        after == before + 1,
        format!("retry: one delayed message on the slow lane ({before} -> {after})"),
    );
}

/// An event its (new, so slow-lane) webhook fails, with no retry: handed
/// over by the main lane, failed on the slow lane, recorded.
async fn missed_event(w: &World, dispatch: &mut Function, r: &mut Report) {
    let (_, body) = testkit::envelope(TENANT, EventType::FlowxErrored, json!({"n": 2}));
    let handed = handed_over(
        w,
        dispatch,
        r,
        "missed-1",
        &body,
        "an event its webhook will fail",
    )
    .await;
    let failed = w
        .dispatch(
            dispatch,
            r,
            handed,
            "the missed event's attempt, answered 500",
        )
        .await;
    r.check(
        failed.as_ref().is_some_and(Vec::is_empty),
        format!("missed event: recorded as failed ({failed:?})"),
    );
}

/// The retried webhook's failed event has its automatic retry still to
/// come: a recovery leaves it to that retry rather than send it twice.
async fn left_to_its_retry(w: &mut World, api: &mut Function, r: &mut Report, webhook: &str) {
    let key = w.key.clone();
    let since = (time::OffsetDateTime::now_utc() - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let path = format!("/webhooks/{webhook}/recover");
    let preview = w
        .call(
            api,
            r,
            Request::new("POST", &path, &key).json(&json!({"since": since, "dry_run": true})),
            200,
        )
        .await
        .map(|a| a.json());
    r.check(
        preview.as_ref().is_some_and(|p| {
            p["retry_pending"].as_u64() >= Some(1) && p["would_queue"].as_u64() == Some(0)
        }),
        format!("a recovery leaves an event to its pending retry ({preview:?})"),
    );
}

/// A recovery: the api counts and queues the failing webhook's
/// missed event (reading the tenant's events by time, their attempts, and
/// claiming an attempt number); the dispatch function takes a recovery's
/// page from the slow lane, with its own permissions.
async fn recovery(
    w: &mut World,
    api: &mut Function,
    dispatch: &mut Function,
    r: &mut Report,
    webhook: &str,
) {
    use shared::recovery::{RecoveryState, Window};
    use shared::slow_lane::{Continuation, RecoveryMessage};
    use shared::store::RecoveryWrite;
    use shared::store::prelude::*;
    println!("api and dispatch functions, a recovery:");
    let key = w.key.clone();
    let now = time::OffsetDateTime::now_utc();
    let window = Window {
        since: now - time::Duration::hours(1),
        until: now + time::Duration::seconds(1),
    };
    let since = window
        .since
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let path = format!("/webhooks/{webhook}/recover");
    let preview = w
        .call(
            api,
            r,
            Request::new("POST", &path, &key).json(&json!({"since": since, "dry_run": true})),
            200,
        )
        .await
        .map(|a| a.json());
    r.check(
        preview
            .as_ref()
            .is_some_and(|p| p["would_queue"].as_u64() >= Some(1)),
        format!("a dry run counts the failed event ({preview:?})"),
    );
    let answer = w
        .call(
            api,
            r,
            Request::new("POST", &path, &key).json(&json!({"since": since})),
            202,
        )
        .await
        .map(|a| a.json());
    r.check(
        answer
            .as_ref()
            .is_some_and(|a| a["queued"].as_u64() >= Some(1) && a["status"] == "done"),
        format!("the recovery queued it ({answer:?})"),
    );
    w.call(
        api,
        r,
        Request::new("GET", &format!("/webhooks/{webhook}/recovery"), &key),
        200,
    )
    .await;
    // The manual attempt, made (the receiver fails it again).
    let queued = w.slow_lane_records(1).await;
    if let Some(failed) = w
        .dispatch(dispatch, r, queued, "the recovered attempt")
        .await
    {
        r.check(
            failed.is_empty(),
            format!("recovered attempt: no failures ({failed:?})"),
        );
    }
    // A recovery's page on the slow lane, as the api hands on the rest of a window.
    let (Ok(tenant), Ok(id)) = (shared::TenantId::parse(TENANT), webhook.parse()) else {
        r.check(false, "the webhook's id parses");
        return;
    };
    let state = RecoveryState::start(tenant.clone(), id, window, now);
    let started = w
        .store
        .save_recovery(
            &state,
            RecoveryWrite::Start {
                now: now.unix_timestamp(),
                entry: &shared::audit::operator::recovery(&tenant, id),
            },
        )
        .await;
    r.check(
        matches!(started, Ok(shared::store::Conditional::Applied)),
        format!("a new recovery starts once the last is done ({started:?})"),
    );
    let message = RecoveryMessage {
        recover: Continuation {
            tenant_id: tenant.clone(),
            webhook_id: id,
            recovery_id: state.recovery_id.clone(),
            window,
            after: None,
        },
    };
    let mut page = record(&w.names, "recover-1", &message.to_json());
    page["eventSourceARN"] = json!(w.names.slow_arn);
    if let Some(failed) = w.dispatch(dispatch, r, vec![page], "a recovery page").await {
        r.check(
            failed.is_empty(),
            format!("recovery page: no failures ({failed:?})"),
        );
    }
    let saved = w.store.recovery(&tenant, id).await.ok().flatten();
    r.check(
        saved
            .as_ref()
            .is_some_and(|s| s.done && s.counts.queued >= 1 && s.stopped.is_none()),
        format!("the page queued the event again and ended the recovery ({saved:?})"),
    );
    let again = w.slow_lane_records(1).await;
    if let Some(failed) = w.dispatch(dispatch, r, again, "the page's attempt").await {
        r.check(
            failed.is_empty(),
            format!("page's attempt: no failures ({failed:?})"),
        );
    }
}

/// The tenant of the throttle's scenario: no other webhook takes its events.
const THROTTLED_TENANT: &str = "rehearsal-throttled";

/// The tenant of the failing streak's scenario, and where its two
/// webhooks' receivers take their requests (the failing receiver, the
/// healthy one).
const STREAK_TENANT: &str = "rehearsal-streak";
const STREAK_PATH: &str = "/streak";
const WATCHER_PATH: &str = "/watcher";

/// The requests `receiver` has had at `path`.
fn at_path(receiver: &Receiver, path: &str) -> Vec<testkit::receiver::Received> {
    receiver
        .requests()
        .into_iter()
        .filter(|q| q.path == path)
        .collect()
}

/// An SQS record's body, parsed (null if it is not JSON).
fn body_of(record: &Value) -> Value {
    serde_json::from_str(record["body"].as_str().unwrap_or_default()).unwrap_or(Value::Null)
}

/// A webhook as stored now.
async fn stored(w: &World, tenant: &str, id: shared::WebhookId) -> Option<shared::Webhook> {
    use shared::store::prelude::*;
    let tenant = shared::TenantId::parse(tenant).ok()?;
    w.store.get_webhook(&tenant, id).await.ok().flatten()
}

/// A webhook throttled to 1 delivery a second (quick: not marked slow) and
/// 3 events at once. The main lane hands the 3 attempts to the slow lane
/// (a throttled webhook's attempts wait there); the slow lane reserves a
/// slot for each on the webhook's item (conditional UpdateItems), makes
/// the one whose slot has come and sends the others back to its queue,
/// delayed until their slots: not recorded, not failed. Back at their
/// slots, they are made without reserving again: each event delivered once.
async fn throttled(w: &mut World, dispatch: &mut Function, r: &mut Report) {
    use shared::store::prelude::*;
    println!("dispatch function, a throttled webhook:");
    let mark = log_mark(dispatch);
    let path = "/throttled";
    let mut webhook = testkit::add_webhook(
        &w.store,
        THROTTLED_TENANT,
        &w.ok.url(path),
        &[EventType::AsyncCompleted],
        Status::Active,
    )
    .await;
    w.hooks.push(Hook::of(&webhook));
    webhook.throttle_rate = shared::throttle::ThrottleRate::new(1).ok();
    webhook.slow_since = None;
    let updated = w
        .store
        .update_webhook(
            &webhook,
            webhook.updated_at,
            &shared::audit::operator::updated(&webhook, &webhook),
        )
        .await;
    r.check(
        updated.is_ok(),
        format!("throttle: the webhook is throttled to 1 a second ({updated:?})"),
    );
    let batch: Vec<(Event, String)> = (0..3)
        .map(|n| testkit::envelope(THROTTLED_TENANT, EventType::AsyncCompleted, json!({"n": n})))
        .collect();
    let records = batch
        .iter()
        .enumerate()
        .map(|(i, (_, body))| record(&w.names, &format!("throttled-{i}"), body))
        .collect();
    let failed = w
        .dispatch(dispatch, r, records, "3 events to a throttled webhook")
        .await;
    r.check(
        failed.as_ref().is_some_and(Vec::is_empty),
        format!("throttle: the main lane's 3 messages are done ({failed:?})"),
    );
    let made = at_path(&w.ok, path).len();
    r.check(
        made == 0,
        format!("throttle: the main lane made no attempt itself ({made})"),
    );
    let handed = w.slow_lane_records_of(THROTTLED_TENANT, 3).await;
    r.check(
        handed.len() == 3,
        format!(
            "throttle: the 3 attempts are handed to the slow lane ({})",
            handed.len()
        ),
    );
    let failed = w
        .dispatch(
            dispatch,
            r,
            handed,
            "the throttled webhook's attempts on the slow lane",
        )
        .await;
    r.check(
        failed.as_ref().is_some_and(Vec::is_empty),
        format!(
            "throttle: the slow lane's 3 messages are done, none failed for waiting ({failed:?})"
        ),
    );
    // The first slot is now and the next within what the invocation may
    // wait in place; the rest go back to the slow lane's queue (checked
    // below: they come back holding their slot).
    let now = at_path(&w.ok, path).len();
    r.check(
        (1..=2).contains(&now),
        format!("throttle: {now} made at once (want 1 or 2; the rest wait on the queue)"),
    );
    let item = stored(w, THROTTLED_TENANT, webhook.id).await;
    let next = item.as_ref().and_then(|i| i.throttle_next);
    r.check(
        next.is_some(),
        format!("throttle: the webhook's item holds its next slot (throttle_next {next:?})"),
    );
    // Back at their slots (1 s and 2 s on).
    let waiting = 3usize.saturating_sub(now);
    let back = w.slow_lane_records_of(THROTTLED_TENANT, waiting).await;
    let slotted = back
        .iter()
        .filter(|m| body_of(m)["target"]["slot"].is_i64())
        .count();
    r.check(
        back.len() == waiting && slotted == waiting,
        format!(
            "throttle: the sent-back attempts came back holding their slot ({slotted} of {}, want {waiting})",
            back.len()
        ),
    );
    let failed = w
        .dispatch(dispatch, r, back, "the throttled attempts at their slots")
        .await;
    r.check(
        failed.as_ref().is_some_and(Vec::is_empty),
        format!("throttle: the attempts at their slots are done ({failed:?})"),
    );
    let received = at_path(&w.ok, path);
    let counts: Vec<usize> = batch
        .iter()
        .map(|(event, _)| {
            let id = event.id.to_string();
            received
                .iter()
                .filter(|q| q.header("webhook-id").is_some_and(|h| h.starts_with(&id)))
                .count()
        })
        .collect();
    r.check(
        counts == [1, 1, 1],
        format!("throttle: each of the 3 events delivered once ({counts:?})"),
    );
    let left = w.slow_lane_records_of(THROTTLED_TENANT, 0).await;
    r.check(
        left.is_empty(),
        format!(
            "throttle: nothing of it left on the slow lane ({})",
            left.len()
        ),
    );
    no_denial_since(r, dispatch, mark, "throttle");
}

/// A webhook whose receiver answers 500, subscribed to async events and to
/// `webhook.failing`, and a watcher subscribed to both notices. Four
/// failures in a row (one invocation each): the first writes the streak on
/// the webhook's item, the next read its attempts from GSI2, the 4th sends
/// one `webhook.failing` onto the slow lane's queue; dispatched from there,
/// it reaches the watcher and not the webhook it is about. Then, on the
/// dispatch function deployed with a 2 s auto-disable period, a failure
/// past it sets the webhook inactive with one `webhook.disabled`; an
/// inactive webhook gets nothing more. Last, a notice forged onto the
/// producers' queue is refused.
async fn failing_streak(
    w: &mut World,
    dispatch: &mut Function,
    disabling: &mut Function,
    r: &mut Report,
) {
    println!("dispatch functions, a failing streak and its notices:");
    let (mark, disabling_mark) = (log_mark(dispatch), log_mark(disabling));
    let webhook = testkit::add_webhook(
        &w.store,
        STREAK_TENANT,
        &w.failing.url(STREAK_PATH),
        &[
            EventType::AsyncCompleted,
            EventType::AsyncErrored,
            EventType::WebhookFailing,
        ],
        Status::Active,
    )
    .await;
    let watcher = testkit::add_webhook(
        &w.store,
        STREAK_TENANT,
        &w.ok.url(WATCHER_PATH),
        &EventType::NOTICES,
        Status::Active,
    )
    .await;
    w.hooks.push(Hook::of(&webhook));
    w.hooks.push(Hook::of(&watcher));
    let id = webhook.id.to_string();
    for n in 1..=4 {
        let kind = if n % 2 == 0 {
            EventType::AsyncErrored
        } else {
            EventType::AsyncCompleted
        };
        let (_, body) = testkit::envelope(STREAK_TENANT, kind, json!({"n": n}));
        let what = format!("failure {n} of the streak");
        let failed = w
            .dispatch(
                dispatch,
                r,
                vec![record(&w.names, &format!("streak-{n}"), &body)],
                &what,
            )
            .await;
        r.check(
            failed.as_ref().is_some_and(Vec::is_empty),
            format!("streak: {what}: the message is done ({failed:?})"),
        );
        let item = stored(w, STREAK_TENANT, webhook.id).await;
        let (since, noticed, error) = item
            .as_ref()
            .map(|i| (i.failing_since, i.failing_notice_at, i.last_error.clone()))
            .unwrap_or_default();
        r.check(
            since.is_some() && error.as_deref() == Some("status 500") && noticed.is_some() == (n == 4),
            format!(
                "streak: after failure {n}: failing_since {}, last_error {error:?}, failing_notice_at {} (want it from the 4th on)",
                if since.is_some() { "set" } else { "unset" },
                if noticed.is_some() { "set" } else { "unset" },
            ),
        );
    }
    let made = at_path(&w.failing, STREAK_PATH).len();
    r.check(
        made == 4,
        format!("streak: the failing receiver was called 4 times ({made})"),
    );
    let notices = w.slow_lane_records_of(STREAK_TENANT, 1).await;
    let bodies: Vec<Value> = notices.iter().map(body_of).collect();
    r.check(
        bodies.len() == 1
            && bodies[0]["type"] == "webhook.failing"
            && bodies[0]["subject"] == id.as_str()
            && bodies[0]["data"]["webhook_id"] == id.as_str()
            && bodies[0]["data"]["last_error"] == "status 500",
        format!(
            "streak: one webhook.failing notice about the webhook on the slow lane (messages: {}, types {:?})",
            bodies.len(),
            bodies.iter().map(|b| b["type"].clone()).collect::<Vec<_>>()
        ),
    );
    let failed = w
        .dispatch(dispatch, r, notices, "the webhook.failing notice")
        .await;
    r.check(
        failed.as_ref().is_some_and(Vec::is_empty),
        format!("streak: the notice's message is done ({failed:?})"),
    );
    notice_delivered(w, r, &id, "webhook.failing", 1, 4);

    // Past the 2 s period since failing_since: one more failure disables.
    if let Some(since) = stored(w, STREAK_TENANT, webhook.id)
        .await
        .and_then(|i| i.failing_since)
    {
        let due = since + time::Duration::milliseconds(2_200);
        let wait = due - time::OffsetDateTime::now_utc();
        if wait.is_positive() {
            tokio::time::sleep(wait.unsigned_abs()).await;
        }
    }
    let (_, body) = testkit::envelope(STREAK_TENANT, EventType::AsyncErrored, json!({"n": 5}));
    let failed = w
        .dispatch(
            disabling,
            r,
            vec![record(&w.names, "streak-5", &body)],
            "a failure past the auto-disable period",
        )
        .await;
    r.check(
        failed.as_ref().is_some_and(Vec::is_empty),
        format!("disable: the message is done ({failed:?})"),
    );
    let item = stored(w, STREAK_TENANT, webhook.id).await;
    r.check(
        item.as_ref().is_some_and(|i| {
            i.status == Status::Inactive
                && i.disabled_reason
                    .as_deref()
                    .is_some_and(|d| d.contains("every attempt has failed since"))
        }),
        format!(
            "disable: the webhook is inactive, with its reason ({:?}, {:?})",
            item.as_ref().map(|i| i.status),
            item.as_ref().and_then(|i| i.disabled_reason.clone())
        ),
    );
    let notices = w.slow_lane_records_of(STREAK_TENANT, 1).await;
    let bodies: Vec<Value> = notices.iter().map(body_of).collect();
    r.check(
        bodies.len() == 1
            && bodies[0]["type"] == "webhook.disabled"
            && bodies[0]["subject"] == id.as_str()
            && bodies[0]["data"]["webhook_id"] == id.as_str()
            && bodies[0]["data"]["reason"].is_string(),
        format!(
            "disable: one webhook.disabled notice about the webhook on the slow lane (messages: {}, types {:?})",
            bodies.len(),
            bodies.iter().map(|b| b["type"].clone()).collect::<Vec<_>>()
        ),
    );
    let failed = w
        .dispatch(dispatch, r, notices, "the webhook.disabled notice")
        .await;
    r.check(
        failed.as_ref().is_some_and(Vec::is_empty),
        format!("disable: the notice's message is done ({failed:?})"),
    );
    notice_delivered(w, r, &id, "webhook.disabled", 2, 5);
    // Inactive: an event it is subscribed to is not attempted.
    let (_, body) = testkit::envelope(STREAK_TENANT, EventType::AsyncCompleted, json!({"n": 6}));
    let failed = w
        .dispatch(
            dispatch,
            r,
            vec![record(&w.names, "streak-6", &body)],
            "an event for the disabled webhook",
        )
        .await;
    let made = at_path(&w.failing, STREAK_PATH).len();
    r.check(
        failed.as_ref().is_some_and(Vec::is_empty) && made == 5,
        format!(
            "disable: the inactive webhook is not attempted ({failed:?}, {made} calls, want 5)"
        ),
    );
    forged_notice(w, dispatch, r, &webhook).await;
    let left = w.slow_lane_records_of(STREAK_TENANT, 0).await;
    r.check(
        left.is_empty(),
        format!(
            "streak: nothing more of it on the slow lane ({})",
            left.len()
        ),
    );
    no_denial_since(r, dispatch, mark, "streak and notices");
    no_denial_since(r, disabling, disabling_mark, "auto-disable");
}

/// Checks that the watcher has had `want` notices, the last of type `kind`
/// about webhook `id`, and that the webhook's own receiver had no more than
/// its `calls` attempts.
fn notice_delivered(w: &World, r: &mut Report, id: &str, kind: &str, want: usize, calls: usize) {
    let got = at_path(&w.ok, WATCHER_PATH);
    let last: Value = got
        .last()
        .and_then(|q| serde_json::from_slice(&q.body).ok())
        .unwrap_or(Value::Null);
    r.check(
        got.len() == want && last["type"] == kind && last["data"]["webhook_id"] == id,
        format!(
            "{kind}: delivered to the watcher ({} deliveries, want {want}; last type {}, data.webhook_id {})",
            got.len(),
            last["type"],
            last["data"]["webhook_id"]
        ),
    );
    let made = at_path(&w.failing, STREAK_PATH).len();
    r.check(
        made == calls,
        format!("{kind}: not delivered to the webhook it is about ({made} calls, want {calls})"),
    );
}

/// A `webhook.failing` envelope on the producers' queue: forged (notices
/// come from the platform, on the slow lane), a batch item failure, and
/// delivered to no one.
async fn forged_notice(
    w: &World,
    dispatch: &mut Function,
    r: &mut Report,
    about: &shared::Webhook,
) {
    let now = time::OffsetDateTime::now_utc();
    let notice = shared::notice::Notice::Failing {
        since: now,
        error: "status 500",
    };
    let Ok(event) = notice.event(about, now) else {
        r.check(false, "forged notice: the notice is made");
        return;
    };
    let before = at_path(&w.ok, WATCHER_PATH).len();
    let failed = w
        .dispatch(
            dispatch,
            r,
            vec![record(&w.names, "forged-notice", &event.to_json())],
            "a webhook.failing notice from the producers' queue",
        )
        .await;
    r.check(
        failed.as_deref() == Some(&["forged-notice".to_owned()][..]),
        format!("forged notice: a batch item failure ({failed:?})"),
    );
    let after = at_path(&w.ok, WATCHER_PATH).len();
    r.check(
        after == before,
        format!("forged notice: delivered to no one ({before} -> {after})"),
    );
}

/// A message that is not an event comes back as a batch item failure.
async fn poison(w: &World, dispatch: &mut Function, r: &mut Report) {
    let (_, good) = testkit::envelope(TENANT, EventType::FlowxSkipped, json!({}));
    let records = vec![
        record(&w.names, "poison-1", "not json"),
        record(&w.names, "poison-ok", &good),
    ];
    let failed = w
        .dispatch(dispatch, r, records, "a poison message beside a good one")
        .await;
    r.check(
        failed.as_deref() == Some(&["poison-1".to_owned()][..]),
        format!("poison: only the poison message fails ({failed:?})"),
    );
}

/// The floor: a do-nothing `lambda_runtime` binary, started and invoked once.
pub async fn floor(binary: &Path, logs: &Path, r: &mut Report) {
    let started = Function::start(
        "floor",
        binary,
        &[],
        128,
        Duration::from_secs(3),
        logs.join("floor.log"),
    )
    .await;
    match started {
        Ok(mut f) => {
            let asked = Instant::now();
            let answered = f.invoke(&json!({})).await;
            r.check(answered.is_ok(), "the floor answered");
            cold(r, &f, "{}", asked.elapsed());
        }
        Err(e) => r.check(false, format!("the floor: {e}")),
    }
}
