//! `webhooks api-key …`, the real binary, against a table on moto, with the
//! api handler on the same table checking what each command did to a key.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use shared::Settings;
use testkit::{Call, fresh_store};

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn webhooks(table: &str, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_webhooks"))
        .args(["--table", table, "api-key"])
        .args(args)
        .output()
        .expect("run webhooks");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn listed(table: &str) -> Vec<Value> {
    let run = webhooks(table, &["list", "--tenant", "acme", "--json"]);
    assert!(run.ok, "{}", run.stderr);
    let list: Value = serde_json::from_str(&run.stdout).expect("JSON");
    list["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn create_list_rotate_revoke_and_bad_input_against_a_table() {
    let store = fresh_store().await;
    let table = store.table().to_owned();
    // Every request reads its key: what a command did shows at once.
    let app = api::App::new(
        store,
        Settings {
            api_key_cache_ttl: Duration::ZERO,
            ..Settings::with_table(&table)
        },
    );
    let status = |key: String, method: &'static str| {
        let app = &app;
        async move {
            let call = Call::new(method, "/webhooks", &key);
            let call = if method == "POST" {
                call.json(serde_json::json!({}))
            } else {
                call
            };
            let reply = call.send(app).await;
            (
                reply.status,
                reply.body["error"]["code"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        }
    };

    let made = webhooks(
        &table,
        &[
            "create",
            "--tenant",
            "acme",
            "--name",
            "ci",
            "--expires-in",
            "90d",
            "--scope",
            "read",
        ],
    );
    assert!(made.ok, "{}", made.stderr);
    let key = made.stdout.trim().to_owned();
    assert!(key.starts_with("whk_") && !made.stderr.contains(&key));
    let keys = listed(&table);
    assert_eq!(keys.len(), 1);
    let id = keys[0]["id"].as_str().unwrap().to_owned();
    assert!(
        made.stderr.contains(&id),
        "the id is printed: {}",
        made.stderr
    );
    assert_eq!(
        (keys[0]["name"].as_str(), keys[0]["scope"].as_str()),
        (Some("ci"), Some("read"))
    );
    assert!(
        keys[0]["expires_at"]
            .as_str()
            .is_some_and(|e| e.starts_with('2'))
    );
    assert_eq!(status(key.clone(), "GET").await.0, 200);
    assert_eq!(
        status(key.clone(), "POST").await,
        (403, "insufficient_scope".to_owned())
    );
    let used = listed(&table);
    assert!(
        used[0]["last_used_at"].is_string(),
        "the first use is recorded"
    );

    // Rotation without overlap: the old key ends now, the new one works.
    let rotated = webhooks(
        &table,
        &["rotate", "--tenant", "acme", "--id", &id, "--overlap", "0"],
    );
    assert!(rotated.ok, "{}", rotated.stderr);
    let new_key = rotated.stdout.trim().to_owned();
    assert_eq!(
        status(key.clone(), "GET").await,
        (401, "api_key_expired".to_owned())
    );
    assert_eq!(status(new_key.clone(), "GET").await.0, 200);
    let keys = listed(&table);
    assert_eq!(keys.len(), 2);
    let new_id = keys.iter().find(|k| k["id"] != id.as_str()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        keys.iter().find(|k| k["id"] == new_id.as_str()).unwrap()["scope"],
        "read"
    );

    // Bad input: named, and nothing changes.
    for (args, named) in [
        (
            vec!["revoke", "--tenant", "other", "--id", &new_id],
            "has no API key",
        ),
        (vec!["revoke", "--tenant", "acme", "--id", "wh_123"], "--id"),
        (
            vec![
                "rotate",
                "--tenant",
                "acme",
                "--id",
                &new_id,
                "--overlap",
                "1y",
            ],
            "--overlap",
        ),
        (
            vec!["create", "--tenant", "acme", "--expires-in", "soon"],
            "--expires-in",
        ),
    ] {
        let run = webhooks(&table, &args);
        assert!(
            !run.ok && run.stderr.contains(named),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert_eq!(listed(&table).len(), 2);
    assert_eq!(status(new_key.clone(), "GET").await.0, 200);

    let revoked = webhooks(&table, &["revoke", "--tenant", "acme", "--id", &new_id]);
    assert!(revoked.ok, "{}", revoked.stderr);
    assert_eq!(
        status(new_key, "GET").await,
        (401, "api_key_revoked".to_owned())
    );
    let table_text = webhooks(&table, &["list", "--tenant", "acme"]).stdout;
    assert!(table_text.starts_with("ID"), "{table_text}");
    assert!(
        table_text
            .lines()
            .any(|l| l.starts_with(new_id.as_str()) && l.contains("revoked")),
        "{table_text}"
    );
}
