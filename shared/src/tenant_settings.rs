//! A tenant's data-protection settings: how long an event's payload is kept,
//! and whether receivers' response bodies are kept in the delivery log.

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// What a tenant chose (`GET /settings`, `PATCH /settings`); a tenant that
/// never chose has the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSettings {
    /// Hours an event's `data` stays readable (`GET /events`, redelivery,
    /// recovery) after the dispatcher accepted it: 0 to 168. With 0 it is
    /// never written to the table; deliveries still carry it.
    pub payload_retention_hours: u16,
    /// Whether a delivery record keeps the first KiB of the receiver's answer.
    pub keep_response_bodies: bool,
}

impl TenantSettings {
    pub const MAX_PAYLOAD_RETENTION_HOURS: u16 = 168;

    /// `payload_retention_hours` checked against its bounds.
    pub fn retention_hours(hours: i64) -> Result<u16, ValidationError> {
        u16::try_from(hours)
            .ok()
            .filter(|h| *h <= Self::MAX_PAYLOAD_RETENTION_HOURS)
            .ok_or_else(|| {
                ValidationError::new(
                    "payload_retention_hours",
                    format!(
                        "must be a whole number of hours from 0 to {} (got {hours})",
                        Self::MAX_PAYLOAD_RETENTION_HOURS
                    ),
                )
            })
    }
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            payload_retention_hours: Self::MAX_PAYLOAD_RETENTION_HOURS,
            keep_response_bodies: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_bounds() {
        assert_eq!(TenantSettings::retention_hours(0), Ok(0));
        assert_eq!(TenantSettings::retention_hours(168), Ok(168));
        for bad in [-1, 169, i64::MAX] {
            let e = TenantSettings::retention_hours(bad).unwrap_err();
            assert_eq!(e.field, "payload_retention_hours");
            assert!(e.message.contains(&bad.to_string()));
        }
        assert_eq!(TenantSettings::default().payload_retention_hours, 168);
        assert!(TenantSettings::default().keep_response_bodies);
    }
}
