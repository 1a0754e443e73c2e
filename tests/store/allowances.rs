//! Allowances: a tenant's counter per allowance and window of time.

use shared::TenantId;
use shared::store::prelude::*;
use shared::store::{Allowance, Conditional, MemoryStore};
use testkit::fresh_store;

/// Takes what is left and no more, in one window of one allowance of one
/// tenant; another window, allowance or tenant has its own.
async fn contract(store: &impl AllowanceStore) {
    let acme = TenantId::parse("acme").unwrap();
    let globex = TenantId::parse("globex").unwrap();
    let (redeliveries, window) = (Allowance::Redeliveries, 1_000);
    let take = |tenant: &TenantId, allowance, window, n| {
        let tenant = tenant.clone();
        async move {
            store
                .take_allowance(&tenant, allowance, window, n, 10)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        take(&acme, redeliveries, window, 6).await,
        Conditional::Applied
    );
    assert_eq!(
        take(&acme, redeliveries, window, 5).await,
        Conditional::Refused,
        "4 are left"
    );
    assert_eq!(
        take(&acme, redeliveries, window, 4).await,
        Conditional::Applied
    );
    assert_eq!(
        take(&acme, redeliveries, window, 1).await,
        Conditional::Refused
    );
    assert_eq!(
        take(&acme, redeliveries, window + 1, 10).await,
        Conditional::Applied
    );
    assert_eq!(
        take(&acme, Allowance::TestEvents, window, 10).await,
        Conditional::Applied
    );
    assert_eq!(
        take(&globex, redeliveries, window, 10).await,
        Conditional::Applied
    );
    assert_eq!(
        take(&globex, redeliveries, window + 2, 11).await,
        Conditional::Refused,
        "more than the limit at once"
    );
}

#[tokio::test]
async fn dynamo_store_keeps_the_allowance_contract() {
    contract(&fresh_store().await).await;
}

#[tokio::test]
async fn memory_store_keeps_the_allowance_contract() {
    contract(&MemoryStore::default()).await;
}
