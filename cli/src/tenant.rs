//! `webhooks tenant …`: the operator's commands on a whole tenant.

use std::io::Write;

use clap::Subcommand;
use shared::TenantId;
use shared::audit::{Action, Actor, AuditEntry, Target, TargetKind};
use shared::store::{AuditStore, DynamoStore, PurgeCounts, PurgeOptions, PurgeProgress};

#[derive(Subcommand)]
pub enum TenantCommand {
    /// Delete every item of a tenant (the customer has left).
    ///
    /// Webhooks, API keys, settings, events, payloads, delivery records,
    /// budgets, recoveries, the audit log: a Scan of the whole table (it
    /// reads all of it once) and a write per item deleted. Then one audit
    /// entry, `tenant.purged`, with the counts: the receipt. Without --yes it only counts
    /// them, and exits with status 2. Safe to run again: a second run finds
    /// what is left.
    Purge {
        /// The tenant whose items go.
        #[arg(long)]
        tenant: String,
        /// Delete what it finds; without it, only count.
        #[arg(long)]
        yes: bool,
        /// Segments of the Scan read at once: a large table sooner, for the
        /// same read units.
        #[arg(
            long,
            default_value_t = 1,
            value_parser = clap::value_parser!(u32).range(1..=i64::from(PurgeOptions::MAX_SEGMENTS))
        )]
        segments: u32,
    },
}

/// What a command came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Done {
    /// Items were deleted (or none were the tenant's).
    Deleted,
    /// Only counted, as asked: the caller exits with status 2, so that a
    /// script cannot take a count for a purge.
    Counted,
}

/// Runs one `tenant` command: progress on standard error, the counts by
/// kind on standard output.
pub async fn run(store: &DynamoStore, command: TenantCommand) -> Result<Done, String> {
    match command {
        TenantCommand::Purge {
            tenant,
            yes,
            segments,
        } => {
            let tenant =
                TenantId::parse(&tenant).map_err(|e| format!("--tenant: {}", e.message))?;
            let options = PurgeOptions {
                delete: yes,
                segments,
                page_items: None,
            };
            let (counts, done) = purge(store, &tenant, options, &mut std::io::stderr()).await?;
            let mut out = std::io::stdout().lock();
            out.write_all(summary(&counts).as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| format!("standard output: {e}"))?;
            Ok(done)
        }
    }
}

/// A purge (or its count), its progress and its end told on `log`.
async fn purge(
    store: &DynamoStore,
    tenant: &TenantId,
    options: PurgeOptions,
    log: &mut impl Write,
) -> Result<(PurgeCounts, Done), String> {
    // The log is the operator's terminal: a line that cannot be written
    // there is no reason to stop a purge half way.
    let mut say = |line: String| {
        let _ = writeln!(log, "{line}");
    };
    let counts = store
        .purge_tenant(tenant, options, |p| {
            say(progress_line(tenant, p, options.delete))
        })
        .await
        .map_err(|e| {
            format!(
                "tenant {tenant}: {e} (what was deleted before stays deleted; \
                 run the command again to go on)"
            )
        })?;
    let total = counts.total();
    if options.delete {
        say(format!("tenant {tenant}: deleted {total} item(s)."));
        // The receipt: what went, kept (as the only item of the tenant)
        // for the audit log's 400 days; a later purge leaves it.
        store.record(&receipt(tenant, &counts)).await.map_err(|e| {
            format!("tenant {tenant}: deleted, but the audit log's receipt was not written: {e}")
        })?;
        Ok((counts, Done::Deleted))
    } else {
        say(format!(
            "tenant {tenant}: counted {total} item(s), deleted nothing; \
             run again with --yes to delete them."
        ));
        Ok((counts, Done::Counted))
    }
}

/// The audit entry a purge leaves: what it deleted, by kind.
fn receipt(tenant: &TenantId, counts: &PurgeCounts) -> AuditEntry {
    let mut deleted: serde_json::Map<String, serde_json::Value> = counts
        .by_kind()
        .into_iter()
        .map(|(kind, n)| (kind.replace(' ', "_"), n.into()))
        .collect();
    deleted.insert("total".into(), counts.total().into());
    AuditEntry::new(
        tenant,
        &Actor::Operator,
        Action::TenantPurged,
        Target::new(TargetKind::Tenant, tenant),
        serde_json::json!({ "deleted": deleted }),
    )
}

/// The line after each page of the Scan.
fn progress_line(tenant: &TenantId, p: &PurgeProgress, delete: bool) -> String {
    let mut line = format!(
        "tenant {tenant}: {} page(s), {} item(s) of the table scanned, {} of the tenant's found",
        p.pages, p.scanned, p.found
    );
    if delete {
        line.push_str(&format!(", {} deleted", p.deleted));
    }
    line
}

/// The counts by kind, a line each, and their total.
fn summary(counts: &PurgeCounts) -> String {
    let mut out = String::new();
    for (kind, n) in counts
        .by_kind()
        .into_iter()
        .chain([("total", counts.total())])
    {
        out.push_str(&format!("{kind:<11} {n}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::store::prelude::*;
    use shared::webhook::now_utc;
    use shared::{EventSet, EventType, UrlPolicy, Webhook, WebhookUrl};

    #[test]
    fn the_summary_lists_every_kind_and_the_total() {
        let counts = PurgeCounts {
            webhooks: 2,
            deliveries: 40,
            other: 1,
            ..PurgeCounts::default()
        };
        assert_eq!(
            summary(&counts),
            "webhooks    2\napi keys    0\nsettings    0\nevents      0\npayloads    0\n\
             deliveries  40\nbudgets     0\nrecoveries  0\naudit log   0\nother       1\ntotal       43\n"
        );
    }

    #[test]
    fn progress_lines_say_deleted_only_when_deleting() {
        let tenant = TenantId::parse("acme").unwrap();
        let p = PurgeProgress {
            pages: 3,
            scanned: 9000,
            found: 120,
            deleted: 120,
        };
        assert_eq!(
            progress_line(&tenant, &p, false),
            "tenant acme: 3 page(s), 9000 item(s) of the table scanned, 120 of the tenant's found"
        );
        assert!(progress_line(&tenant, &p, true).ends_with(", 120 deleted"));
    }

    /// Against moto (run through scripts/test): a count deletes nothing and
    /// says so; `--yes` deletes; a second run finds nothing.
    #[tokio::test]
    async fn a_count_then_a_purge_then_nothing_left() {
        let store = testkit::fresh_store().await;
        let acme = TenantId::parse("acme").unwrap();
        let w = Webhook::new(
            acme.clone(),
            WebhookUrl::parse("https://hooks.example.com/x", UrlPolicy::default()).unwrap(),
            EventSet::new([EventType::AsyncCompleted]).unwrap(),
            now_utc(),
        );
        store
            .create_webhook(&w, 10, &shared::audit::operator::created(&w))
            .await
            .unwrap();
        testkit::api_key_for(&store, "acme").await;

        let mut log = Vec::new();
        let (counts, done) = purge(&store, &acme, PurgeOptions::count(), &mut log)
            .await
            .unwrap();
        assert_eq!(done, Done::Counted);
        assert_eq!((counts.webhooks, counts.api_keys), (1, 1));
        let log = String::from_utf8(log).unwrap();
        assert!(log.contains("of the tenant's found"), "{log}");
        assert!(log.contains("deleted nothing"), "{log}");
        assert!(store.get_webhook(&acme, w.id).await.unwrap().is_some());

        let mut log = Vec::new();
        let (deleted, done) = purge(&store, &acme, PurgeOptions::delete(), &mut log)
            .await
            .unwrap();
        assert_eq!((deleted, done), (counts, Done::Deleted));
        assert!(store.get_webhook(&acme, w.id).await.unwrap().is_none());
        let log = String::from_utf8(log).unwrap();
        assert!(
            log.contains(&format!("deleted {} item(s)", counts.total())),
            "{log}"
        );

        // The receipt stays, and names what went.
        let receipts = |store: &DynamoStore| {
            let query = shared::store::AuditQuery {
                limit: 10,
                ..Default::default()
            };
            let acme = acme.clone();
            let store = store.clone();
            async move { store.audit_log(&acme, &query).await.unwrap().items }
        };
        let left = receipts(&store).await;
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].action, Action::TenantPurged);
        assert_eq!(left[0].actor, Actor::Operator);
        assert_eq!(left[0].changes["deleted"]["total"], counts.total());
        assert_eq!(left[0].changes["deleted"]["webhooks"], 1);

        // Again: nothing found (a receipt is not the tenant's data), a
        // second receipt.
        let (again, _) = purge(&store, &acme, PurgeOptions::delete(), &mut Vec::new())
            .await
            .unwrap();
        assert_eq!(again.total(), 0);
        let left = receipts(&store).await;
        assert_eq!(left.len(), 2, "{left:?}");
        assert_eq!(left[0].changes["deleted"]["total"], 0);
    }
}
