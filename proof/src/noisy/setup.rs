//! The population, made through the product's own interfaces: an API key per
//! tenant from the CLI (or the stack itself, with its store in memory), webhooks registered with `POST /webhooks`. Quiet
//! tenants q1..q5 (one webhook each on `ok`), `noisyhang` (one on `hang`),
//! `noisyslow` (one on `slow3`), `noisyredeliver` (50 on `hang`,
//! subscribed to `flowx.completed` only until phase 2c, with one kept
//! `async.completed` event that nobody received) and `throttled` (one on
//! `ok` with `throttle_rate`, phase 2t's).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::Method;
use serde_json::{Value, json};

use crate::api::Api;
use crate::hooks::{Behaviour, Hooks};
use crate::load::{EVENT_TYPE, Emitter};
use crate::stack;

pub const QUIET_TENANTS: usize = 5;
pub const REDELIVER_WEBHOOKS: usize = 50;

/// One registered webhook.
#[derive(Clone, Debug)]
pub struct Hook {
    pub id: String,
    /// Its path on the receiver: `/hooks/<label>`.
    pub label: String,
}

/// A tenant, its API key (never printed) and its webhooks.
#[derive(Clone)]
pub struct Tenant {
    pub id: String,
    pub key: String,
    pub behaviour: Behaviour,
    pub hooks: Vec<Hook>,
}

/// Everything the phases need.
pub struct Population {
    pub quiet: Vec<Tenant>,
    pub hang: Tenant,
    /// One webhook on `breaks`: healthy, then hanging (phase 2d).
    pub breaks: Tenant,
    pub slow: Tenant,
    pub redeliver: Tenant,
    /// The redeliver tenant's kept event.
    pub seed_event: String,
    /// One webhook on `ok` registered with `throttle_rate` (phase 2t).
    pub throttled: Tenant,
    pub throttle: Throttle,
}

/// Phase 2t's webhook as the API took it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Throttle {
    /// The `throttle_rate` asked for at registration (deliveries a second).
    pub rate: u32,
    /// `throttle_rate` as `GET /webhooks/{id}` shows it (None: not shown).
    pub shown: Option<u64>,
    /// Why `POST /webhooks` refused the field (the webhook was then
    /// registered without it: a stack without the throttle).
    pub refused: Option<String>,
}

/// What setup needs from the stack.
pub struct Setup<'a> {
    pub keys: &'a stack::Keys,
    pub api: Api,
    pub hooks: &'a Hooks,
    pub receivers: &'a HashMap<Behaviour, SocketAddr>,
    /// Phase 2t's webhook's `throttle_rate`.
    pub throttle_rate: u32,
}

impl Setup<'_> {
    async fn tenant(
        &self,
        id: &str,
        behaviour: Behaviour,
        labels: Vec<String>,
        events: &str,
    ) -> Result<Tenant, String> {
        let key = self.keys.make(id).await?;
        let addr = self
            .receivers
            .get(&behaviour)
            .ok_or("no receiver for a behaviour")?;
        let mut hooks = Vec::with_capacity(labels.len());
        for label in labels {
            let body = json!({"url": format!("http://{addr}/hooks/{label}"), "events": [events]});
            let created = self
                .api
                .expect(Method::POST, "/webhooks", &key, Some(&body), 201)
                .await?;
            hooks.push(self.registered(&created, label)?);
        }
        Ok(Tenant {
            id: id.to_owned(),
            key,
            behaviour,
            hooks,
        })
    }

    /// A webhook `POST /webhooks` created: its id, and its token expected
    /// by the receiver.
    fn registered(&self, created: &Value, label: String) -> Result<Hook, String> {
        let webhook = created
            .get("id")
            .and_then(Value::as_str)
            .ok_or("POST /webhooks: no id in the answer")?;
        let token = created
            .get("token")
            .and_then(Value::as_str)
            .ok_or("POST /webhooks: no token in the answer")?;
        self.hooks.expect(&label, token);
        Ok(Hook {
            id: webhook.to_owned(),
            label,
        })
    }

    /// Phase 2t's tenant: one webhook on `ok` with `throttle_rate`. A stack
    /// that refuses the field (one without the throttle) gets the webhook
    /// without it, and the report says so: the phase then measures an
    /// unthrottled webhook and fails its rate goal.
    async fn throttled(&self) -> Result<(Tenant, Throttle), String> {
        let (id, behaviour) = ("throttled", Behaviour::Ok);
        let key = self.keys.make(id).await?;
        let addr = self
            .receivers
            .get(&behaviour)
            .ok_or("no receiver for a behaviour")?;
        let label = id.to_owned();
        let url = format!("http://{addr}/hooks/{label}");
        let body = json!({"url": url, "events": [EVENT_TYPE], "throttle_rate": self.throttle_rate});
        let answer = self
            .api
            .call(Method::POST, "/webhooks", Some(&key), Some(&body))
            .await?;
        let (created, refused) = match answer.status {
            201 => (answer.body, None),
            400 | 422 => {
                let error = |f: &str| {
                    answer
                        .body
                        .pointer(&format!("/error/{f}"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned()
                };
                let why = format!("{} {}: {}", answer.status, error("code"), error("message"));
                eprintln!(
                    "noisy: POST /webhooks refused throttle_rate ({why}); phase 2t's webhook is registered without it"
                );
                let plain = json!({"url": url, "events": [EVENT_TYPE]});
                let created = self
                    .api
                    .expect(Method::POST, "/webhooks", &key, Some(&plain), 201)
                    .await?;
                (created, Some(why))
            }
            other => {
                return Err(format!(
                    "POST /webhooks (with throttle_rate): answered {other}, expected 201"
                ));
            }
        };
        let hook = self.registered(&created, label)?;
        let shown = self
            .api
            .expect(
                Method::GET,
                &format!("/webhooks/{}", hook.id),
                &key,
                None,
                200,
            )
            .await?
            .get("throttle_rate")
            .and_then(Value::as_u64);
        let tenant = Tenant {
            id: id.to_owned(),
            key,
            behaviour,
            hooks: vec![hook],
        };
        let throttle = Throttle {
            rate: self.throttle_rate,
            shown,
            refused,
        };
        Ok((tenant, throttle))
    }

    /// Makes every tenant and webhook, and the redeliver tenant's seed event.
    pub async fn run(&self, emitter: &Emitter) -> Result<Population, String> {
        let mut quiet = Vec::with_capacity(QUIET_TENANTS);
        for i in 1..=QUIET_TENANTS {
            let id = format!("q{i}");
            quiet.push(
                self.tenant(&id, Behaviour::Ok, vec![id.clone()], EVENT_TYPE)
                    .await?,
            );
        }
        // As a customer does after registering (the dashboard's "send a test
        // event"): a quick answer also moves a new endpoint to the main lane,
        // so phase 1 measures the quiet tenants' steady state.
        for tenant in &quiet {
            for hook in &tenant.hooks {
                let path = format!("/webhooks/{}/test", hook.id);
                self.api
                    .expect(Method::POST, &path, &tenant.key, None, 200)
                    .await?;
            }
        }
        let hang = self
            .tenant(
                "noisyhang",
                Behaviour::Hang,
                vec!["noisyhang".into()],
                EVENT_TYPE,
            )
            .await?;
        let slow = self
            .tenant(
                "noisyslow",
                Behaviour::Slow3,
                vec!["noisyslow".into()],
                EVENT_TYPE,
            )
            .await?;
        // Healthy at first: on the main lane, as a webhook that has
        // answered quickly is, until it breaks in phase 2d.
        let breaks = self
            .tenant(
                "noisybreaks",
                Behaviour::Breaks,
                vec!["noisybreaks".into()],
                EVENT_TYPE,
            )
            .await?;
        for hook in &breaks.hooks {
            let path = format!("/webhooks/{}/test", hook.id);
            self.api
                .expect(Method::POST, &path, &breaks.key, None, 200)
                .await?;
        }
        let labels = (1..=REDELIVER_WEBHOOKS)
            .map(|i| format!("noisyredeliver-{i:02}"))
            .collect();
        let redeliver = self
            .tenant("noisyredeliver", Behaviour::Hang, labels, "flowx.completed")
            .await?;
        let (throttled, throttle) = self.throttled().await?;
        // Nobody subscribes to it yet: no delivery, but the event is kept.
        let seed = emitter.send(&redeliver.id, 0).await?;
        if !seed.accepted {
            return Err("the seed event was not accepted by SQS".into());
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let path = format!("/events/{}", seed.event_id);
        loop {
            let answer = self
                .api
                .call(Method::GET, &path, Some(&redeliver.key), None)
                .await?;
            if answer.status == 200 {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the seed event was not kept within 60 s (GET /events/{{id}}: {})",
                    answer.status
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(Population {
            quiet,
            hang,
            slow,
            breaks,
            redeliver,
            seed_event: seed.event_id,
            throttled,
            throttle,
        })
    }
}

/// Phase 2c's last step of setup: the redeliver tenant's webhooks subscribe
/// to the seed event's type.
pub async fn subscribe_redeliver(api: &Api, tenant: &Tenant) -> Result<(), String> {
    let body = json!({"events": [EVENT_TYPE]});
    for hook in &tenant.hooks {
        api.expect(
            Method::PATCH,
            &format!("/webhooks/{}", hook.id),
            &tenant.key,
            Some(&body),
            200,
        )
        .await?;
    }
    Ok(())
}
