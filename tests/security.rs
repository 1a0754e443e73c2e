//! Hostile input: the address rule against the standard library, an SSRF
//! matrix at registration and at send time, header injection, randomized
//! tenant isolation, and API keys stored hashed. Real handlers, moto, and a
//! receiver on 127.0.0.1 that must never see a connection.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use serde_json::json;
use shared::delivery::ClientConfig;
use shared::ssrf::is_forbidden;
use shared::store::DynamoStore;
use shared::store::prelude::*;
use shared::{EventType, Status};
use testkit::receiver::{Behavior, Receiver};
use testkit::{Call, add_webhook, api_key_for, fresh_store, settings};

// ---- the address classifier against std's own predicates ---------------------

fn std_says_not_public_v4(ip: Ipv4Addr) -> bool {
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || ip.is_documentation()
}

fn std_says_not_public_v6(ip: Ipv6Addr) -> bool {
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn every_v4_address_std_calls_non_public_is_forbidden(bits: u32) {
        let ip = Ipv4Addr::from(bits);
        if std_says_not_public_v4(ip) {
            prop_assert!(is_forbidden(IpAddr::V4(ip)), "{ip}");
        }
    }

    #[test]
    fn every_v6_address_std_calls_non_public_is_forbidden(bits: u128) {
        let ip = Ipv6Addr::from(bits);
        if std_says_not_public_v6(ip) {
            prop_assert!(is_forbidden(IpAddr::V6(ip)), "{ip}");
        }
    }

    #[test]
    fn an_ipv4_mapped_address_is_judged_as_its_ipv4(bits: u32) {
        let v4 = Ipv4Addr::from(bits);
        let mapped = v4.to_ipv6_mapped();
        prop_assert_eq!(is_forbidden(IpAddr::V6(mapped)), is_forbidden(IpAddr::V4(v4)));
        prop_assert_eq!(mapped.to_ipv4_mapped(), Some(v4));
    }

    /// Addresses near the non-public ones: std's predicates draw the bounds.
    #[test]
    fn the_edges_of_the_private_ranges(a in prop::sample::select(vec![9u8, 10, 11, 126, 127, 128, 169, 172, 192]), b: u8, c: u8, d: u8) {
        let ip = Ipv4Addr::new(a, b, c, d);
        if std_says_not_public_v4(ip) {
            prop_assert!(is_forbidden(IpAddr::V4(ip)), "{ip}");
        }
    }
}

// ---- SSRF at registration ---------------------------------------------------------

/// Refused at registration, however spelt.
const REFUSED_URLS: &[&str] = &[
    // each forbidden IPv4 range, first and last address
    "http://0.0.0.0/",
    "http://0.255.255.255/",
    "http://10.0.0.0/",
    "http://10.255.255.255/",
    "http://100.64.0.0/",
    "http://100.127.255.255/",
    "http://127.0.0.1/",
    "http://127.255.255.255/",
    "http://169.254.0.0/",
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.255.255/",
    "http://172.16.0.0/",
    "http://172.31.255.255/",
    "http://192.0.0.0/",
    "http://192.0.0.255/",
    "http://192.0.2.0/",
    "http://192.0.2.255/",
    "http://192.168.0.0/",
    "http://192.168.255.255/",
    "http://198.18.0.0/",
    "http://198.19.255.255/",
    "http://198.51.100.0/",
    "http://203.0.113.255/",
    "http://224.0.0.1/",
    "http://239.255.255.255/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    // other spellings of loopback
    "http://2130706433/",
    "http://017700000001/",
    "http://0x7f000001/",
    "http://0x7f.1/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://127.0.1/",
    "http://0/",
    "HTTP://127.0.0.1/",
    "HtTpS://10.0.0.1/",
    "http://127.0.0.1./",
    // names
    "http://localhost/",
    "http://LOCALHOST/",
    "http://localhost./",
    "http://api.localhost/",
    "https://a.b.localhost./x",
    // IPv6 and every form that embeds an IPv4 address
    "http://[::1]/",
    "http://[::]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::127.0.0.1]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[2002:7f00:1::]/",
    "http://[2002:a00:1::1]/",
    "http://[fc00::1]/",
    "http://[fdff:ffff:ffff::1]/",
    "http://[fe80::1]/",
    "http://[febf::1]/",
    "http://[fec0::1]/",
    "http://[ff02::1]/",
    "http://[2001:db8::1]/",
    "http://[100::1]/",
    "http://[2001::1]/",
    // user-info and fragment tricks
    "https://good.example.com@127.0.0.1/",
    "https://good.example.com:pw@10.0.0.1/",
    "https://127.0.0.1#@good.example.com/",
];

/// Accepted: public addresses and names that only look alike.
const ACCEPTED_URLS: &[&str] = &[
    "https://8.8.8.8/",
    "https://[2606:4700:4700::1111]/",
    "https://hooks.example.com/ekyc",
    "https://localhost.example.com/",
    "https://127.0.0.1.example.com/",
    "HTTPS://HOOKS.EXAMPLE.COM/x",
    "https://[::ffff:8.8.8.8]/",
    "https://[2002:808:808::1]/",
];

async fn strict_app(dns: HashMap<String, Vec<IpAddr>>) -> api::App<DynamoStore> {
    let store = fresh_store().await;
    let settings = shared::Settings {
        // The matrix sends a test event to every target at once.
        test_events_per_10_seconds: 1000,
        ..settings(store.table(), 1000)
    };
    api::App::new(store, settings).with_client_config(ClientConfig {
        allow_private_targets: false,
        dns_overrides: dns,
        ..ClientConfig::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_targets_are_refused_at_registration_however_spelt() {
    let app = strict_app(HashMap::new()).await;
    let key = api_key_for(&app.store, "acme").await;
    for url in REFUSED_URLS {
        let reply = Call::new("POST", "/webhooks", &key)
            .json(json!({"url": url, "events": ["async.completed"]}))
            .send(&app)
            .await;
        assert_eq!(reply.status, 400, "{url} was accepted: {}", reply.body);
        assert_eq!(reply.error().1.as_deref(), Some("url"), "{url}");
    }
    let first = Call::new("POST", "/webhooks", &key)
        .json(json!({"url": "https://hooks.example.com/", "events": ["async.completed"]}))
        .send(&app)
        .await;
    let id = first.body["id"].as_str().unwrap().to_owned();
    for url in REFUSED_URLS {
        let reply = Call::new("PATCH", &format!("/webhooks/{id}"), &key)
            .json(json!({"url": url}))
            .send(&app)
            .await;
        assert_eq!(reply.status, 400, "PATCH to {url} was accepted");
    }
    for url in ACCEPTED_URLS {
        let reply = Call::new("POST", "/webhooks", &key)
            .json(json!({"url": url, "events": ["async.completed"]}))
            .send(&app)
            .await;
        assert_eq!(reply.status, 201, "{url} was refused: {}", reply.body);
    }
    let stored = app
        .store
        .list_webhooks(&shared::TenantId::parse("acme").unwrap(), 100, None)
        .await
        .unwrap();
    assert_eq!(
        stored.items.len(),
        1 + ACCEPTED_URLS.len(),
        "nothing refused was stored"
    );
}

// ---- SSRF at send time --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_targets_are_blocked_at_send_time_without_a_connection() {
    let rx = Receiver::start(Behavior::status(200)).await;
    let port = rx.addr.port();
    let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    let forbidden: Vec<IpAddr> = vec![
        v4(127, 0, 0, 1),
        v4(10, 0, 0, 1),
        v4(172, 16, 0, 1),
        v4(192, 168, 1, 1),
        v4(169, 254, 169, 254),
        v4(100, 64, 0, 1),
        v4(0, 0, 0, 0),
        v4(224, 0, 0, 1),
        "::1".parse().unwrap(),
        "::ffff:127.0.0.1".parse().unwrap(),
        "fd00::1".parse().unwrap(),
        "fe80::1".parse().unwrap(),
        "64:ff9b::7f00:1".parse().unwrap(),
    ];
    // Names that pass registration and resolve to forbidden addresses at send
    // time (DNS rebinding), one of them among public addresses.
    let mut dns: HashMap<String, Vec<IpAddr>> = forbidden
        .iter()
        .enumerate()
        .map(|(i, ip)| (format!("rebind{i}.example.com"), vec![*ip]))
        .collect();
    dns.insert(
        "mixed.example.com".into(),
        vec![v4(8, 8, 8, 8), v4(127, 0, 0, 1)],
    );
    let names: Vec<String> = dns.keys().cloned().collect();
    let app = strict_app(dns.clone()).await;
    let key = api_key_for(&app.store, "acme").await;

    // At registration, a name that already resolves to a forbidden address is refused.
    for name in &names {
        let reply = Call::new("POST", "/webhooks", &key)
            .json(json!({"url": format!("http://{name}:{port}/"), "events": ["async.completed"]}))
            .send(&app)
            .await;
        assert_eq!(reply.status, 400, "{name}: {}", reply.body);
        assert_eq!(reply.error().1.as_deref(), Some("url"));
    }
    // Registered while the names pointed at a public address; rebound afterwards.
    let public: HashMap<String, Vec<IpAddr>> = names
        .iter()
        .map(|n| (n.clone(), vec![v4(93, 184, 215, 14)]))
        .collect();
    let before_rebinding = api::App::new(app.store.clone(), settings(app.store.table(), 1000))
        .with_client_config(ClientConfig {
            allow_private_targets: false,
            dns_overrides: public,
            ..ClientConfig::default()
        });
    let mut ids = Vec::new();
    for name in &names {
        let reply = Call::new("POST", "/webhooks", &key)
            .json(json!({"url": format!("http://{name}:{port}/"), "events": ["async.completed"]}))
            .send(&before_rebinding)
            .await;
        assert_eq!(reply.status, 201, "{name}: {}", reply.body);
        ids.push((name.clone(), reply.body["id"].as_str().unwrap().to_owned()));
    }
    // Literals stored before the rule existed (or by hand) are caught too.
    let literals = [
        format!("http://127.0.0.1:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://2130706433:{port}/"),
    ];
    for url in &literals {
        let wh = add_webhook(
            &app.store,
            "acme",
            url,
            &[EventType::AsyncCompleted],
            Status::Active,
        )
        .await;
        ids.push((url.clone(), wh.id.to_string()));
    }
    for (target, id) in &ids {
        let reply = Call::new("POST", &format!("/webhooks/{id}/test"), &key)
            .send(&app)
            .await;
        assert_eq!(reply.status, 200, "{target}: {}", reply.body);
        if target == "mixed.example.com" {
            // The forbidden address is dropped and only the public one is tried
            // (unreachable from here): never the receiver on 127.0.0.1.
            assert_ne!(reply.body["outcome"], "delivered", "{}", reply.body);
        } else {
            assert_eq!(reply.body["outcome"], "blocked", "{target}: {}", reply.body);
        }
    }
    assert_eq!(
        rx.connections(),
        0,
        "no connection reached the receiver on 127.0.0.1"
    );
}

// ---- header injection -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_and_non_ascii_never_reach_a_header() {
    let app = strict_app(HashMap::new()).await;
    let key = api_key_for(&app.store, "acme").await;
    let created = Call::new("POST", "/webhooks", &key)
        .json(json!({"url": "https://hooks.example.com/", "events": ["async.completed"], "token": "a-good-token-0123456789"}))
        .send(&app)
        .await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let bad_tokens = [
        "abcdefghijklmnop\r\nX-Injected: 1",
        "abcdefghijklmnop\nX-Injected: 1",
        "abcdefghijklmnop\rX",
        "abcdefghijklmnop\u{0}",
        "abcdefghijklmnop\u{7f}",
        "abcdefghijklmnopé",
        "abcdefghijklmnop\u{2028}",
        "abcdefghij klmnop",
        "abcdefghijklmnop\t",
    ];
    for token in bad_tokens {
        let create = Call::new("POST", "/webhooks", &key)
            .json(json!({"url": "https://hooks.example.com/", "events": ["async.completed"], "token": token}))
            .send(&app)
            .await;
        assert_eq!(create.status, 400, "{token:?}");
        assert_eq!(create.error().1.as_deref(), Some("token"), "{token:?}");
        let patch = Call::new("PATCH", &format!("/webhooks/{id}"), &key)
            .json(json!({"token": token}))
            .send(&app)
            .await;
        assert_eq!(patch.error().1.as_deref(), Some("token"), "{token:?}");
    }
    for description in [
        "line\r\nX-Injected: 1",
        "a\nb",
        "nul\u{0}",
        "esc\u{1b}[31m",
        "tab\there",
    ] {
        let patch = Call::new("PATCH", &format!("/webhooks/{id}"), &key)
            .json(json!({"description": description}))
            .send(&app)
            .await;
        assert_eq!(patch.status, 400, "{description:?}");
        assert_eq!(
            patch.error().1.as_deref(),
            Some("description"),
            "{description:?}"
        );
    }
    // Descriptions are text for people: accents are fine (they never reach a request).
    let fine = Call::new("PATCH", &format!("/webhooks/{id}"), &key)
        .json(json!({"description": "Intégration CRM — équipe conformité"}))
        .send(&app)
        .await;
    assert_eq!(fine.status, 200, "{}", fine.body);
    // Nothing bad was stored: the token is the one set at creation.
    let stored = app
        .store
        .get_webhook(
            &shared::TenantId::parse("acme").unwrap(),
            id.parse().unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.token.expose(), "a-good-token-0123456789");
}

// ---- tenant isolation, randomized ------------------------------------------------------

/// A small deterministic generator (xorshift64*): the same seed, the same run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_operations_never_cross_tenants() {
    let store = fresh_store().await;
    let mut s = settings(store.table(), 1000);
    s.url_policy.allow_private_targets = true;
    let app = api::App::new(store, s);
    let rx = Receiver::start(Behavior::status(200)).await;
    let tenants = ["t-alpha", "t-beta", "t-gamma"];
    let mut keys = Vec::new();
    for t in tenants {
        keys.push(api_key_for(&app.store, t).await);
    }
    // Every tenant's URLs carry the tenant's name, so a leak is visible in any body.
    let mut owned: Vec<Vec<String>> = vec![Vec::new(); tenants.len()];
    let seed = 0x5eed_2026_1125_u64;
    let mut rng = Rng(seed);
    for step in 0..300 {
        let who = rng.below(tenants.len());
        let key = &keys[who];
        // Often aim at another tenant's webhook.
        let target_tenant = if rng.below(2) == 0 {
            who
        } else {
            rng.below(tenants.len())
        };
        let target = (!owned[target_tenant].is_empty())
            .then(|| owned[target_tenant][rng.below(owned[target_tenant].len())].clone());
        let id = target
            .clone()
            .unwrap_or_else(|| "wh_01JDQ86G0Q3R8T5V9X2Z4B7D1F".into());
        let one = format!("/webhooks/{id}");
        let (method, path, body) = match rng.below(8) {
            0 | 1 => (
                "POST",
                "/webhooks".to_owned(),
                Some(json!({
                    "url": format!("{}?owner={}", rx.url(&format!("/{}", tenants[who])), tenants[who]),
                    "events": ["async.completed"],
                    "description": format!("owned by {}", tenants[who]),
                })),
            ),
            2 => ("GET", "/webhooks?limit=5".to_owned(), None),
            3 => ("GET", one, None),
            4 => ("PATCH", one, Some(json!({"status": "inactive"}))),
            5 => ("GET", format!("{one}/deliveries"), None),
            6 => ("POST", format!("{one}/test"), None),
            _ => ("DELETE", one, None),
        };
        let mut call = Call::new(method, &path, key);
        if let Some(body) = body {
            call = call.json(body);
        }
        let reply = call.send(&app).await;
        let text = reply.body.to_string();
        for (other, name) in tenants.iter().enumerate() {
            if other == who {
                continue;
            }
            assert!(
                !text.contains(name),
                "step {step} (seed {seed:#x}): {method} {path} by {} leaked {name}: {text}",
                tenants[who]
            );
            for foreign in &owned[other] {
                assert!(
                    !text.contains(foreign.as_str()),
                    "step {step}: {method} {path} leaked {foreign}"
                );
            }
        }
        let foreign_target = target.is_some() && target_tenant != who;
        if foreign_target && path.contains("/webhooks/wh_") {
            assert_eq!(
                reply.status, 404,
                "step {step}: {method} {path} on a foreign webhook"
            );
        }
        if method == "POST" && path == "/webhooks" && reply.status == 201 {
            owned[who].push(reply.body["id"].as_str().unwrap().to_owned());
        }
        if method == "DELETE" && reply.status == 204 {
            owned[who].retain(|w| w != &id);
        }
    }
    // Nothing a foreign tenant did changed anything: every webhook still names its owner.
    for (i, t) in tenants.iter().enumerate() {
        let list = Call::new("GET", "/webhooks?limit=100", &keys[i])
            .send(&app)
            .await;
        for w in list.body["data"].as_array().unwrap() {
            assert!(w["url"].as_str().unwrap().contains(t));
        }
        assert_eq!(list.body["data"].as_array().unwrap().len(), owned[i].len());
    }
    // Test events went only to their own tenant's path.
    for req in rx.requests() {
        let owner = req
            .path
            .trim_start_matches('/')
            .split('?')
            .next()
            .unwrap()
            .to_owned();
        assert!(tenants.contains(&owner.as_str()), "{}", req.path);
    }
}

// ---- API keys are stored hashed ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_stored_as_hashes_only() {
    let store = fresh_store().await;
    let key = api_key_for(&store, "acme").await;
    let raw: Vec<String> = testkit::raw_items(&store)
        .await
        .iter()
        .map(|(_, _, item)| format!("{item:?}"))
        .collect();
    assert!(!raw.is_empty());
    assert!(
        raw.iter().all(|item| !item.contains(&key)),
        "the key is stored in clear"
    );
    let hash = shared::api_key::hash(&key);
    assert!(
        raw.iter().any(|item| item.contains(&hash)),
        "the hash is the key's record"
    );
}

// ---- a revoked key loses its power at once ---------------------------------------

/// Two api containers on one table, each with the key cache on (30 s). A
/// leaked key is used on container A (so A caches it), then the tenant
/// revokes it through container B. On A, within the cache's window, the
/// leaked key may still read (the documented window: the negative control
/// that shows the cache is in play), but every change is decided on the
/// store's strongly consistent read: it can neither make a key nor revoke
/// the tenant's own. On B, which revoked it, it cannot even read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_cannot_change_anything_while_another_container_caches_it() {
    let store = fresh_store().await;
    let settings = settings(store.table(), 10);
    assert_eq!(
        settings.api_key_cache_ttl,
        std::time::Duration::from_secs(30)
    );
    let a = api::App::new(store.clone(), settings.clone());
    let b = api::App::new(store.clone(), settings);
    let own = api_key_for(&store, "acme").await;
    let leaked = api_key_for(&store, "acme").await;

    let listed = Call::new("GET", "/api-keys", &leaked).send(&a).await;
    assert_eq!(listed.status, 200);
    let leaked_id = listed.body["data"]
        .as_array()
        .and_then(|keys| {
            keys.iter()
                .find(|k| k["prefix"].as_str().is_some_and(|p| leaked.starts_with(p)))
        })
        .and_then(|k| k["id"].as_str())
        .expect("the leaked key is listed")
        .to_owned();
    let own_id = listed.body["data"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["id"] != leaked_id.as_str()))
        .and_then(|k| k["id"].as_str())
        .expect("the tenant's own key is listed")
        .to_owned();

    let revoked = Call::new("DELETE", &format!("/api-keys/{leaked_id}"), &own)
        .send(&b)
        .await;
    assert_eq!(revoked.status, 200, "{:?}", revoked.body);

    // Container A still holds the leaked key: a read goes through.
    let read = Call::new("GET", "/webhooks", &leaked).send(&a).await;
    assert_eq!(read.status, 200, "the cache's window applies to reads");
    // No change goes through.
    let made = Call::new("POST", "/api-keys", &leaked)
        .json(json!({"name": "backdoor"}))
        .send(&a)
        .await;
    assert_eq!(
        (made.status, made.error().0),
        (401, "api_key_revoked".into())
    );
    let locked_out = Call::new("DELETE", &format!("/api-keys/{own_id}"), &leaked)
        .send(&a)
        .await;
    assert_eq!(
        (locked_out.status, locked_out.error().0),
        (401, "api_key_revoked".into())
    );
    let webhook = Call::new("POST", "/webhooks", &leaked)
        .json(json!({"url": "https://attacker.example.com/", "events": ["async.completed"]}))
        .send(&a)
        .await;
    assert_eq!(webhook.status, 401);
    // The container that revoked it forgot it at once.
    let on_b = Call::new("GET", "/webhooks", &leaked).send(&b).await;
    assert_eq!(
        (on_b.status, on_b.error().0),
        (401, "api_key_revoked".into())
    );
    // The tenant's own key still works everywhere.
    for app in [&a, &b] {
        let mine = Call::new("GET", "/api-keys", &own).send(app).await;
        assert_eq!(mine.status, 200);
    }
}

/// A key made through the API by an expiring key expires with its maker at
/// the latest, whether it asked for no expiry or for a later one; a key
/// without expiry makes keys as asked (the control).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_never_outlives_the_key_that_made_it() {
    let store = fresh_store().await;
    let app = api::App::new(store.clone(), settings(store.table(), 10));
    let tenant = shared::TenantId::parse("acme").unwrap();
    let expiry = shared::api_key::now() + time::Duration::days(1);
    let (expiring, _) = shared::key_lifecycle::issue(
        &store,
        tenant,
        "expiring".into(),
        shared::api_key::Scope::Full,
        Some(expiry),
    )
    .await
    .unwrap();
    let expiry = expiry
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    for asked in [
        json!({"name": "heir"}),
        json!({"name": "heir", "expires_at": "2999-01-01T00:00:00Z"}),
    ] {
        let made = Call::new("POST", "/api-keys", &expiring)
            .json(asked)
            .send(&app)
            .await;
        assert_eq!(made.status, 201, "{}", made.body);
        assert_eq!(made.body["expires_at"], expiry.as_str(), "{}", made.body);
    }
    let lasting = api_key_for(&store, "acme").await;
    let made = Call::new("POST", "/api-keys", &lasting)
        .json(json!({"name": "heir"}))
        .send(&app)
        .await;
    assert_eq!(
        (made.status, &made.body["expires_at"]),
        (201, &serde_json::Value::Null)
    );
}

/// A tenant cannot lock itself out with a key about to expire: revoking its
/// only lasting full key while the other full key expires within minutes is
/// `409 last_full_key`; once a lasting key exists beside it, the same call
/// goes through (the control).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_about_to_expire_does_not_count_as_the_key_kept() {
    let store = fresh_store().await;
    let app = api::App::new(store.clone(), settings(store.table(), 10));
    let tenant = shared::TenantId::parse("acme").unwrap();
    let (expiring, _) = shared::key_lifecycle::issue(
        &store,
        tenant.clone(),
        "expiring".into(),
        shared::api_key::Scope::Full,
        Some(shared::api_key::now() + time::Duration::seconds(5)),
    )
    .await
    .unwrap();
    let (_, lasting) = shared::key_lifecycle::issue(
        &store,
        tenant.clone(),
        "lasting".into(),
        shared::api_key::Scope::Full,
        None,
    )
    .await
    .unwrap();
    let path = format!("/api-keys/{}", lasting.id);
    let refused = Call::new("DELETE", &path, &expiring).send(&app).await;
    assert_eq!(
        (refused.status, refused.error().0),
        (409, "last_full_key".into()),
        "{}",
        refused.body
    );
    let listed = store.api_key(&lasting.hash).await.unwrap().unwrap();
    assert_eq!(listed.revoked_at, None);

    api_key_for(&store, "acme").await;
    let revoked = Call::new("DELETE", &path, &expiring).send(&app).await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
}

/// Keys remember which key made them, and a leaked key goes with every key
/// made from it in one call: the holder of a leaked key who made himself a
/// key, and another from that one, keeps none of them. Revoking without
/// `with_descendants` (the control) leaves what the key made working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_key_is_revoked_with_every_key_made_from_it() {
    let store = fresh_store().await;
    let app = api::App::new(store.clone(), settings(store.table(), 10));
    let own = api_key_for(&store, "acme").await;
    let make = |maker: String| {
        let app = &app;
        async move {
            let made = Call::new("POST", "/api-keys", &maker)
                .json(json!({"name": "made"}))
                .send(app)
                .await;
            assert_eq!(made.status, 201, "{}", made.body);
            (
                made.body["key"].as_str().unwrap().to_owned(),
                made.body["id"].as_str().unwrap().to_owned(),
                made.body["created_by"].clone(),
            )
        }
    };
    let id_of = |key: &str| {
        let key = key.to_owned();
        let app = &app;
        let own = own.clone();
        async move {
            let listed = Call::new("GET", "/api-keys", &own).send(app).await;
            listed.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|k| key.starts_with(k["prefix"].as_str().unwrap()))
                .map(|k| k["id"].as_str().unwrap().to_owned())
                .unwrap()
        }
    };

    let leaked = api_key_for(&store, "acme").await;
    let leaked_id = id_of(&leaked).await;
    let (child, child_id, made_by) = make(leaked.clone()).await;
    assert_eq!(made_by, leaked_id.as_str(), "the child names its maker");
    let (grandchild, _, made_by) = make(child.clone()).await;
    assert_eq!(made_by, child_id.as_str());

    let revoked = Call::new(
        "DELETE",
        &format!("/api-keys/{leaked_id}?with_descendants=true"),
        &own,
    )
    .send(&app)
    .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    let ids: Vec<&str> = revoked.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], leaked_id);
    for key in [&leaked, &child, &grandchild] {
        let refused = Call::new("POST", "/api-keys", key)
            .json(json!({"name": "again"}))
            .send(&app)
            .await;
        assert_eq!(
            (refused.status, refused.error().0),
            (401, "api_key_revoked".into())
        );
    }
    assert_eq!(
        Call::new("GET", "/api-keys", &own).send(&app).await.status,
        200
    );

    // The control: the plain revocation takes the key alone.
    let other = api_key_for(&store, "acme").await;
    let other_id = id_of(&other).await;
    let (kept, _, _) = make(other.clone()).await;
    let alone = Call::new("DELETE", &format!("/api-keys/{other_id}"), &own)
        .send(&app)
        .await;
    assert_eq!((alone.status, &alone.body["id"]), (200, &json!(other_id)));
    assert_eq!(
        Call::new("GET", "/webhooks", &kept).send(&app).await.status,
        200
    );
    let bad = Call::new(
        "DELETE",
        &format!("/api-keys/{other_id}?with_descendants=yes"),
        &own,
    )
    .send(&app)
    .await;
    assert_eq!(
        (bad.status, bad.error()),
        (
            400,
            ("invalid_value".into(), Some("with_descendants".into()))
        )
    );
}

/// The active-key limit holds under concurrent creates: at 46 active keys
/// (and 2 expired ones, which do not count), 20 creates at once end with
/// exactly 50 active keys, the 16 others refused with `409
/// api_key_limit_reached`; a create once one is revoked goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_creates_never_pass_the_active_key_limit() {
    use shared::api_key::{MAX_ACTIVE_KEYS, Scope};
    let store = fresh_store().await;
    let app = api::App::new(store.clone(), settings(store.table(), 10));
    let tenant = shared::TenantId::parse("acme").unwrap();
    let caller = api_key_for(&store, "acme").await;
    let issue = |name: &str, expires_at| {
        shared::key_lifecycle::issue(&store, tenant.clone(), name.into(), Scope::Read, expires_at)
    };
    for n in 0..MAX_ACTIVE_KEYS - 5 {
        issue(&format!("k{n}"), None).await.unwrap();
    }
    let soon = shared::api_key::now() + time::Duration::seconds(1);
    for n in 0..2 {
        issue(&format!("expiring{n}"), Some(soon)).await.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;

    let creates = (0..20).map(|n| {
        let (app, caller) = (&app, &caller);
        async move {
            Call::new("POST", "/api-keys", caller)
                .json(json!({"name": format!("racing{n}"), "scope": "read"}))
                .send(app)
                .await
        }
    });
    let answers = futures_util::future::join_all(creates).await;
    let made = answers.iter().filter(|a| a.status == 201).count();
    let refused: Vec<_> = answers
        .iter()
        .filter(|a| a.status != 201)
        .map(|a| (a.status, a.error().0))
        .collect();
    assert_eq!(made, 4, "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|r| *r == (409, "api_key_limit_reached".to_owned())),
        "{refused:?}"
    );
    let now = shared::api_key::now();
    let keys = store.api_keys_of(&tenant).await.unwrap();
    let active = || {
        keys.iter()
            .filter(|k| k.state(now) == shared::api_key::KeyState::Active)
            .count()
    };
    assert_eq!(active(), MAX_ACTIVE_KEYS);

    // Revoking one makes room for one.
    let one = keys
        .iter()
        .find(|k| k.name == "k0")
        .map(|k| k.id.to_string())
        .unwrap();
    let revoked = Call::new("DELETE", &format!("/api-keys/{one}"), &caller)
        .send(&app)
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    let again = Call::new("POST", "/api-keys", &caller)
        .json(json!({"name": "after", "scope": "read"}))
        .send(&app)
        .await;
    assert_eq!(again.status, 201, "{}", again.body);
}

/// Costly reads have a per-tenant allowance: four callers with a read key
/// asking a webhook's stats and filtered listings at once get `429
/// read_limit_reached` with `Retry-After` once the tenant's costly reads of
/// the minute are spent. Another tenant's stats, and the same tenant's
/// plain listing (a key range, not costly), still answer (the control).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn costly_reads_are_bounded_per_tenant() {
    use shared::api_key::Scope;
    let store = fresh_store().await;
    let mut settings = settings(store.table(), 10);
    settings.costly_reads_per_minute = 8;
    let app = api::App::new(store.clone(), settings);
    let acme = add_webhook(
        &store,
        "acme",
        "https://a.example.com/",
        &[EventType::AsyncCompleted],
        Status::Active,
    )
    .await;
    let globex = add_webhook(
        &store,
        "globex",
        "https://g.example.com/",
        &[EventType::AsyncCompleted],
        Status::Active,
    )
    .await;
    let (reader, _) = shared::key_lifecycle::issue(
        &store,
        acme.tenant_id.clone(),
        "reader".into(),
        Scope::Read,
        None,
    )
    .await
    .unwrap();
    let theirs = api_key_for(&store, "globex").await;
    testkit::start_of_window(60, 20).await;

    let paths = [
        format!("/webhooks/{}/stats?window=30d", acme.id),
        format!("/webhooks/{}/deliveries?outcome=timeout", acme.id),
        "/events?type=async.completed".to_owned(),
    ];
    let calls = (0..4)
        .flat_map(|_| paths.iter().cycle().take(3))
        .map(|path| {
            let (app, reader) = (&app, &reader);
            async move { Call::new("GET", path, reader).send(app).await }
        });
    let answers = futures_util::future::join_all(calls).await;
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let limited: Vec<_> = answers.iter().filter(|a| a.status == 429).collect();
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!((ok, limited.len()), (8, 4), "{statuses:?}");
    for a in &limited {
        assert_eq!(a.error().0, "read_limit_reached");
        assert!((1..=60).contains(&a.retry_after()));
    }

    let other = Call::new("GET", &format!("/webhooks/{}/stats", globex.id), &theirs)
        .send(&app)
        .await;
    assert_eq!(other.status, 200, "{}", other.body);
    let plain = Call::new("GET", "/events", &reader).send(&app).await;
    assert_eq!(plain.status, 200, "{}", plain.body);
}

/// One tenant flooding the API is refused at its own rate, and another
/// tenant on the same container is not (the control): 40 requests at once
/// from `acme` at 5 a second (10 in a burst) get about 10 answers and 429
/// `rate_limited` with `Retry-After` for the rest, while `globex` gets all
/// of its 5. Made-up keys from one address are refused the same way after
/// their burst, before a table read each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenant_flooding_the_api_is_refused_without_refusing_another() {
    let store = fresh_store().await;
    let settings = shared::Settings {
        tenant_requests_per_second: 5,
        unknown_key_requests_per_second: 5,
        ..settings(store.table(), 10)
    };
    let app = api::App::new(store.clone(), settings);
    let acme = api_key_for(&store, "acme").await;
    let globex = api_key_for(&store, "globex").await;
    let call = |key: String| {
        let app = &app;
        async move { Call::new("GET", "/webhooks", &key).send(app).await }
    };
    // Each key's first use is a table read by address: both fit its burst.
    assert_eq!(call(acme.clone()).await.status, 200);
    assert_eq!(call(globex.clone()).await.status, 200);

    let flood = futures_util::future::join_all((0..40).map(|_| call(acme.clone())));
    let theirs = futures_util::future::join_all((0..5).map(|_| call(globex.clone())));
    let (flood, theirs) = tokio::join!(flood, theirs);
    let answered = flood.iter().filter(|r| r.status == 200).count();
    let refused: Vec<_> = flood.iter().filter(|r| r.status == 429).collect();
    assert!((9..=12).contains(&answered), "{answered} answered");
    assert_eq!(answered + refused.len(), 40);
    for r in &refused {
        assert_eq!(r.error().0, "rate_limited");
        assert!(r.retry_after() >= 1);
    }
    let statuses: Vec<u16> = theirs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200; 5], "the other tenant is not refused");

    // Made-up keys: 401 while the address's burst lasts, then 429.
    let made_up =
        futures_util::future::join_all((0..20).map(|n| call(format!("whk_{n:043}")))).await;
    let unauthorized = made_up.iter().filter(|r| r.status == 401).count();
    let limited = made_up.iter().filter(|r| r.status == 429).count();
    assert!((8..=11).contains(&unauthorized), "{unauthorized} read");
    assert_eq!(unauthorized + limited, 20);
}
