//! Allowances: items `TENANT#<tenant>` / `<ALLOWANCE>#<window>`, a counter
//! per window of time that TTL removes a day after it.

use super::write::applied;
use super::{DynamoStore, key, number};
use crate::TenantId;
use crate::store::keys;
use crate::store::{Allowance, AllowanceStore, Conditional, StoreError};

impl AllowanceStore for DynamoStore {
    async fn take_allowance(
        &self,
        tenant: &TenantId,
        allowance: Allowance,
        window: i64,
        n: u32,
        limit: u32,
    ) -> Result<Conditional, StoreError> {
        let Some(room) = limit.checked_sub(n) else {
            return Ok(Conditional::Refused);
        };
        let result = self
            .client()
            .await?
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::tenant_pk(tenant), allowance.sk(window))))
            .update_expression("ADD #n :n SET #ttl = :ttl")
            .condition_expression("attribute_not_exists(#n) OR #n <= :room")
            .expression_attribute_names("#n", "taken")
            .expression_attribute_names("#ttl", keys::EXPIRES_AT)
            .expression_attribute_values(":n", number(n))
            .expression_attribute_values(":room", number(room))
            // Kept a day past its window; TTL removes it.
            .expression_attribute_values(":ttl", number(window * allowance.window_secs() + 86_400))
            .send()
            .await;
        applied(result)
    }
}
