//! `webhooks api-key …`: the operator's commands on a tenant's API keys,
//! against any table (`--table`; the local stack's is `webhooks-local`).

use shared::TenantId;
use shared::api_key::{self, ApiKey, KeyId, Scope};
use shared::key_lifecycle::{self, Guard, KeyError};
use shared::store::prelude::*;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What the operator asked, as typed.
pub enum Action {
    Create {
        tenant: String,
        name: Option<String>,
        expires_in: Option<String>,
        scope: String,
    },
    List {
        tenant: String,
        json: bool,
    },
    Revoke {
        tenant: String,
        id: String,
        with_descendants: bool,
    },
    Rotate {
        tenant: String,
        id: String,
        overlap: String,
    },
}

/// What to print: the secret (standard output, alone on its line, so that
/// it can be piped) and a note for the operator (standard error).
#[derive(Debug, Default)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

fn tenant(s: &str) -> Result<TenantId, String> {
    TenantId::parse(s).map_err(|e| format!("--tenant: {}", e.message))
}

fn key_id(s: &str) -> Result<KeyId, String> {
    KeyId::parse(s).map_err(|e| format!("--id: {}", e.message))
}

fn key_error(e: KeyError, tenant: &TenantId, id: &KeyId) -> String {
    match e {
        KeyError::NotFound => format!(
            "tenant {tenant} has no API key {id} (see `webhooks api-key list --tenant {tenant}`; a key of another tenant is not found either)"
        ),
        other => other.to_string(),
    }
}

/// Runs one `api-key` command.
pub async fn run(store: &impl Store, action: Action) -> Result<Output, String> {
    match action {
        Action::Create {
            tenant: t,
            name,
            expires_in,
            scope,
        } => {
            let t = tenant(&t)?;
            let name = api_key::parse_name(name.as_deref().unwrap_or(""))
                .map_err(|e| format!("--name: {}", e.message))?;
            let scope = Scope::parse(&scope).map_err(|e| format!("--scope: {}", e.message))?;
            let lifetime = expires_in
                .map(|s| key_lifecycle::parse_duration("--expires-in", &s))
                .transpose()
                .map_err(|e| format!("{}: {}", e.field, e.message))?;
            let (key, stored) = shared::key_lifecycle::issue(
                store,
                t.clone(),
                name,
                scope,
                key_lifecycle::expiry_in(lifetime),
            )
            .await
            .map_err(|e| e.to_string())?;
            Ok(Output {
                stdout: format!("{key}\n"),
                stderr: format!(
                    "API key {} ({} scope{}) for tenant {t} created. It is shown only this once.\n",
                    stored.id,
                    stored.scope.as_str(),
                    stored
                        .expires_at
                        .map(|e| format!(", expires {}", time_text(Some(e))))
                        .unwrap_or_default()
                ),
            })
        }
        Action::List { tenant: t, json } => {
            let t = tenant(&t)?;
            let keys = store.api_keys_of(&t).await.map_err(|e| e.to_string())?;
            let now = api_key::now();
            let stdout = if json {
                json_list(&keys, now)
            } else {
                table(&keys, now)
            };
            Ok(Output {
                stdout,
                stderr: String::new(),
            })
        }
        Action::Revoke {
            tenant: t,
            id,
            with_descendants,
        } => {
            let (t, id) = (tenant(&t)?, key_id(&id)?);
            let revoked = if with_descendants {
                key_lifecycle::revoke_with_descendants(
                    store,
                    &t,
                    &id,
                    Guard::None,
                    &shared::audit::Actor::Operator,
                )
                .await
            } else {
                key_lifecycle::revoke(store, &t, &id, Guard::None, &shared::audit::Actor::Operator)
                    .await
                    .map(|key| vec![key])
            }
            .map_err(|e| key_error(e, &t, &id))?;
            let stderr = revoked
                .iter()
                .map(|key| {
                    format!(
                        "API key {} of tenant {t} revoked at {}: it changes nothing from now on (a warm api container may accept it for reads for up to API_KEY_CACHE_TTL_SECONDS more).\n",
                        key.id,
                        time_text(key.revoked_at)
                    )
                })
                .collect();
            Ok(Output {
                stdout: String::new(),
                stderr,
            })
        }
        Action::Rotate {
            tenant: t,
            id,
            overlap,
        } => {
            let (t, id) = (tenant(&t)?, key_id(&id)?);
            let overlap = key_lifecycle::parse_duration("--overlap", &overlap)
                .map_err(|e| format!("{}: {}", e.field, e.message))?;
            let (key, new, old) = key_lifecycle::rotate(store, &t, &id, overlap)
                .await
                .map_err(|e| key_error(e, &t, &id))?;
            Ok(Output {
                stdout: format!("{key}\n"),
                stderr: format!(
                    "API key {} replaces {id} for tenant {t} (same name and scope); {id} expires {}. The new key is shown only this once.\n",
                    new.id,
                    time_text(old.expires_at)
                ),
            })
        }
    }
}

fn time_text(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "-".to_owned())
}

/// One line per key, newest first, in aligned columns.
pub fn table(keys: &[ApiKey], now: OffsetDateTime) -> String {
    let mut rows = vec![
        [
            "ID",
            "NAME",
            "PREFIX",
            "SCOPE",
            "STATUS",
            "CREATED",
            "EXPIRES",
            "LAST USED",
            "REVOKED",
        ]
        .map(str::to_owned),
    ];
    for k in keys {
        rows.push([
            k.id.to_string(),
            if k.name.is_empty() {
                "-".into()
            } else {
                k.name.clone()
            },
            format!("{}…", k.shown),
            k.scope.as_str().to_owned(),
            k.state(now).as_str().to_owned(),
            time_text(k.created_at),
            time_text(k.expires_at),
            time_text(k.last_used_at),
            time_text(k.revoked_at),
        ]);
    }
    let widths: Vec<usize> = (0..9)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if keys.is_empty() {
        out.push_str("(no keys)\n");
    }
    out
}

/// The same as JSON, the API's shape (`GET /api-keys`).
pub fn json_list(keys: &[ApiKey], now: OffsetDateTime) -> String {
    let data: Vec<serde_json::Value> = keys
        .iter()
        .map(|k| {
            serde_json::json!({
                "id": k.id.to_string(),
                "tenant_id": k.tenant_id.as_str(),
                "name": k.name,
                "prefix": k.shown,
                "scope": k.scope.as_str(),
                "status": k.state(now).as_str(),
                "created_at": k.created_at.and_then(|t| t.format(&Rfc3339).ok()),
                "expires_at": k.expires_at.and_then(|t| t.format(&Rfc3339).ok()),
                "revoked_at": k.revoked_at.and_then(|t| t.format(&Rfc3339).ok()),
                "last_used_at": k.last_used_at.and_then(|t| t.format(&Rfc3339).ok()),
            })
        })
        .collect();
    format!("{}\n", serde_json::json!({ "data": data }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::store::MemoryStore;

    async fn create(
        store: &MemoryStore,
        extra: impl FnOnce(&mut Action),
    ) -> Result<Output, String> {
        let mut action = Action::Create {
            tenant: "acme".into(),
            name: Some("ci".into()),
            expires_in: None,
            scope: "full".into(),
        };
        extra(&mut action);
        run(store, action).await
    }

    fn list(tenant: &str) -> Action {
        Action::List {
            tenant: tenant.into(),
            json: true,
        }
    }

    async fn listed(store: &MemoryStore, tenant: &str) -> serde_json::Value {
        let out = run(store, list(tenant)).await.unwrap();
        serde_json::from_str(&out.stdout).unwrap()
    }

    #[tokio::test]
    async fn create_list_rotate_revoke() {
        let store = MemoryStore::default();
        let out = create(&store, |_| {}).await.unwrap();
        let key = out.stdout.trim().to_owned();
        assert!(key.starts_with("whk_"));
        let list = listed(&store, "acme").await;
        let first = &list["data"][0];
        assert_eq!(first["name"], "ci");
        assert_eq!(first["status"], "active");
        assert!(key.starts_with(first["prefix"].as_str().unwrap()));
        assert!(!out.stderr.contains(&key) && !list.to_string().contains(&key[8..]));
        let id = first["id"].as_str().unwrap().to_owned();
        assert!(out.stderr.contains(&id));

        let rotated = run(
            &store,
            Action::Rotate {
                tenant: "acme".into(),
                id: id.clone(),
                overlap: "0".into(),
            },
        )
        .await
        .unwrap();
        assert_ne!(rotated.stdout.trim(), key);
        let list = listed(&store, "acme").await;
        assert_eq!(list["data"].as_array().unwrap().len(), 2);
        let old = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id.as_str())
            .unwrap();
        assert_eq!(old["status"], "expired", "overlap 0: the old key ends now");

        run(
            &store,
            Action::Revoke {
                tenant: "acme".into(),
                id: id.clone(),
                with_descendants: false,
            },
        )
        .await
        .unwrap();
        let table = run(
            &store,
            Action::List {
                tenant: "acme".into(),
                json: false,
            },
        )
        .await
        .unwrap()
        .stdout;
        assert!(table.starts_with("ID"), "{table}");
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(&id) && l.contains("revoked")),
            "{table}"
        );
    }

    #[tokio::test]
    async fn bad_input_is_named_and_changes_nothing() {
        let store = MemoryStore::default();
        let e = create(&store, |a| {
            if let Action::Create { expires_in, .. } = a {
                *expires_in = Some("90".into());
            }
        })
        .await
        .unwrap_err();
        assert!(e.starts_with("--expires-in"), "{e}");
        let e = create(&store, |a| {
            if let Action::Create { scope, .. } = a {
                *scope = "admin".into();
            }
        })
        .await
        .unwrap_err();
        assert!(e.starts_with("--scope"), "{e}");
        let e = create(&store, |a| {
            if let Action::Create { tenant, .. } = a {
                *tenant = "a#b".into();
            }
        })
        .await
        .unwrap_err();
        assert!(e.starts_with("--tenant"), "{e}");
        assert_eq!(listed(&store, "acme").await["data"], serde_json::json!([]));

        let out = create(&store, |_| {}).await.unwrap();
        let id = listed(&store, "acme").await["data"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let e = run(
            &store,
            Action::Revoke {
                tenant: "other".into(),
                id: id.clone(),
                with_descendants: false,
            },
        )
        .await
        .unwrap_err();
        assert!(e.contains("has no API key"), "{e}");
        let e = run(
            &store,
            Action::Revoke {
                tenant: "acme".into(),
                id: "wh_1".into(),
                with_descendants: false,
            },
        )
        .await
        .unwrap_err();
        assert!(e.starts_with("--id"), "{e}");
        let e = run(
            &store,
            Action::Rotate {
                tenant: "acme".into(),
                id,
                overlap: "1w".into(),
            },
        )
        .await
        .unwrap_err();
        assert!(e.starts_with("--overlap"), "{e}");
        let stored = store
            .api_key(&api_key::hash(out.stdout.trim()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((stored.revoked_at, stored.expires_at), (None, None));
    }

    /// A leaked key and the keys made from it (and from those) go in one
    /// command; a key made apart from them stays.
    #[tokio::test]
    async fn revoking_with_descendants_takes_the_keys_made_from_it() {
        let store = MemoryStore::default();
        let acme = TenantId::parse("acme").unwrap();
        let (_, leaked) =
            key_lifecycle::issue(&store, acme.clone(), "leaked".into(), Scope::Full, None)
                .await
                .unwrap();
        let (_, child) =
            key_lifecycle::issue_by(&store, &leaked, "child".into(), Scope::Full, None)
                .await
                .unwrap();
        let (_, grandchild) =
            key_lifecycle::issue_by(&store, &child, "grandchild".into(), Scope::Read, None)
                .await
                .unwrap();
        let (_, apart) =
            key_lifecycle::issue(&store, acme.clone(), "apart".into(), Scope::Full, None)
                .await
                .unwrap();
        let out = run(
            &store,
            Action::Revoke {
                tenant: "acme".into(),
                id: leaked.id.to_string(),
                with_descendants: true,
            },
        )
        .await
        .unwrap();
        for key in [&leaked, &child, &grandchild] {
            assert!(out.stderr.contains(key.id.as_str()), "{}", out.stderr);
            let now = store.api_key(&key.hash).await.unwrap().unwrap();
            assert!(now.revoked_at.is_some(), "{} revoked", key.name);
        }
        let kept = store.api_key(&apart.hash).await.unwrap().unwrap();
        assert_eq!(kept.revoked_at, None, "a key made apart stays");
    }
}
