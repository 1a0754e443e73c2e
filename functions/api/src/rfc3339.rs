//! Times as the API shows and takes them: RFC 3339.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::ApiError;

/// `t` as RFC 3339 (empty for a year past 9999, which no time here has).
pub fn format(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// `value` of the query parameter or body field `field` as a time; the
/// error names the field and shows the form wanted.
pub fn parse(field: &str, value: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(value, &Rfc3339).map_err(|_| {
        ApiError::invalid(
            field,
            format!("{field}: must be an RFC 3339 time, e.g. 2026-11-25T17:00:00Z (got {value:?})"),
        )
    })
}
