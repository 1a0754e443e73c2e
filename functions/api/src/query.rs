//! Query strings: decoded once per request into their pairs, then read as
//! typed values by the route that knows its parameters.
//!
//! What every getter does alike: a parameter the route does not know is
//! ignored; one given more than once is checked each time (the first bad
//! value is the error) and the last one counts; each error is a 400
//! `invalid_value` naming the parameter.

use lambda_http::Request;
use shared::EventType;
use shared::audit::Action;
use shared::delivery::Outcome;
use shared::delivery_log::sortable_time;
use shared::delivery_stats::Window;
use shared::event::Subject;
use shared::event_log::EventFilter;

use crate::pagination::{self, MAX_LIMIT, PageRequest};
use time::OffsetDateTime;

use crate::{ApiError, rfc3339};

/// A request's query string as (name, value) pairs, percent-decoded, in
/// the order given.
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn of(req: &Request) -> Self {
        let query = req.uri().query().unwrap_or("");
        Self {
            pairs: url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        }
    }

    /// Hands each value of the parameters `names` to `read`, in the order
    /// the query gives them; stops at the first error.
    fn each(
        &self,
        names: &[&str],
        mut read: impl FnMut(&str, &str) -> Result<(), ApiError>,
    ) -> Result<(), ApiError> {
        for (name, value) in &self.pairs {
            if names.contains(&name.as_str()) {
                read(name, value)?;
            }
        }
        Ok(())
    }

    fn last<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Result<T, ApiError>,
    ) -> Result<Option<T>, ApiError> {
        let mut found = None;
        self.each(&[name], |_, value| {
            found = Some(parse(value)?);
            Ok(())
        })?;
        Ok(found)
    }

    /// `limit` and `cursor`. `position` turns a decoded cursor back into a
    /// position in the list, and refuses what this API did not hand out.
    pub fn page<C>(
        &self,
        position: impl Fn(String) -> Option<C>,
    ) -> Result<PageRequest<C>, ApiError> {
        let mut page = PageRequest::default();
        self.each(&["limit", "cursor"], |name, value| {
            if name == "limit" {
                page.limit = limit(value)?;
            } else {
                let after = pagination::decode_cursor(value).and_then(&position);
                page.after = Some(after.ok_or_else(|| {
                    ApiError::invalid(
                        "cursor",
                        "cursor: is not a cursor returned by this API (use next_cursor)",
                    )
                })?);
            }
            Ok(())
        })?;
        Ok(page)
    }

    /// `type`, `since` and `until`: the event list's filter, and the
    /// delivery log's (there on the attempts' times).
    pub fn events(&self) -> Result<EventFilter, ApiError> {
        let mut filter = EventFilter::default();
        self.each(&["subject", "type", "since", "until"], |name, value| {
            match name {
                "subject" => {
                    let parsed = Subject::parse(value);
                    filter.subject =
                        Some(parsed.map_err(|e| ApiError::invalid("subject", e.to_string()))?);
                }
                "type" => {
                    let parsed = value.parse::<EventType>();
                    filter.event_type =
                        Some(parsed.map_err(|e| ApiError::invalid("type", e.to_string()))?);
                }
                "since" => filter.since = Some(rfc3339::parse(name, value)?),
                _ => filter.until = Some(rfc3339::parse(name, value)?),
            }
            Ok(())
        })?;
        Ok(filter)
    }

    /// `action`, `since` and `until`: the audit log's filter.
    pub fn audit(&self) -> Result<AuditFilter, ApiError> {
        let mut filter = AuditFilter::default();
        self.each(&["action", "since", "until"], |name, value| {
            match name {
                "action" => {
                    let parsed = value.parse::<Action>();
                    filter.action = Some(parsed.map_err(|e| {
                        ApiError::invalid("action", format!("action: {}", e.message))
                    })?);
                }
                "since" => filter.since = Some(rfc3339::parse(name, value)?),
                _ => filter.until = Some(rfc3339::parse(name, value)?),
            }
            Ok(())
        })?;
        Ok(filter)
    }

    /// `outcome`, of the delivery log.
    pub fn outcome(&self) -> Result<Option<Outcome>, ApiError> {
        self.last("outcome", |value| {
            Outcome::parse(value).ok_or_else(|| {
                let names: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
                ApiError::invalid(
                    "outcome",
                    format!(
                        "outcome: must be one of {} (got {value:?})",
                        names.join(", ")
                    ),
                )
            })
        })
    }

    /// A flag: `true` or `false`; false when absent.
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        let flag = self.last(name, |value| match value {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(ApiError::invalid(
                name,
                format!("{name}: must be true or false (got {value:?})"),
            )),
        })?;
        Ok(flag.unwrap_or(false))
    }

    /// `window`, of a webhook's stats; `24h` when absent.
    pub fn window(&self) -> Result<Window, ApiError> {
        let window = self.last("window", |value| {
            Window::parse(value).ok_or_else(|| {
                ApiError::invalid(
                    "window",
                    format!("window: must be 24h, 7d or 30d (got {value:?})"),
                )
            })
        })?;
        Ok(window.unwrap_or(Window::Day))
    }
}

/// What `GET /audit-log` filters on.
#[derive(Debug, Default)]
pub struct AuditFilter {
    pub action: Option<Action>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

fn limit(value: &str) -> Result<usize, ApiError> {
    value
        .parse()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| {
            ApiError::invalid(
                "limit",
                format!("limit: must be an integer from 1 to {MAX_LIMIT} (got {value:?})"),
            )
        })
}

/// `since` before `until`, and a cursor inside that window: DynamoDB refuses
/// a reversed range or a start key outside it (a 500 otherwise). `cursor`
/// is a decoded position, `<time>#…` (events and delivery records alike).
pub fn within_window(filter: &EventFilter, cursor: Option<&str>) -> Result<(), ApiError> {
    let time = cursor.and_then(|c| c.split_once('#')).map(|(time, _)| time);
    in_window(filter.since, filter.until, |since, until| {
        time.is_some_and(|time| {
            since.is_some_and(|s| time < sortable_time(s).as_str())
                || until.is_some_and(|u| time >= sortable_time(u).as_str())
        })
    })
}

/// `since` before `until`, and no cursor `outside` them: what every
/// listing with a time window checks before it reads.
pub fn in_window(
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
    outside: impl Fn(Option<OffsetDateTime>, Option<OffsetDateTime>) -> bool,
) -> Result<(), ApiError> {
    if let (Some(since), Some(until)) = (since, until)
        && since >= until
    {
        return Err(ApiError::invalid(
            "until",
            "until: must be later than since (the window is since ≤ time < until)",
        ));
    }
    if outside(since, until) {
        return Err(ApiError::invalid(
            "cursor",
            "cursor: comes from another since/until window; start again without it",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;
    use time::macros::datetime;

    use super::*;

    fn query(q: &str) -> Query {
        let req = crate::apigw::request("GET", &format!("/x?{q}"), &[], None, "r").unwrap();
        Query::of(&req)
    }

    /// Unknown parameters are ignored; a repeated one is checked each time
    /// and the last counts; values are percent-decoded.
    #[test]
    fn the_last_value_counts_and_every_value_is_checked() {
        let page = query("limit=5&limit=7&colour=red").page(Some).unwrap();
        assert_eq!((page.limit, page.after), (7, None));
        for bad in ["limit=0&limit=7", "limit=7&limit=101"] {
            let e = query(bad).page(Some).err();
            assert!(matches!(e, Some(ApiError::Invalid { field: Some(f), .. }) if f == "limit"));
        }
        let filter = query("since=2026-11-25T17%3A00%3A00Z&type=async.completed")
            .events()
            .unwrap();
        assert_eq!(filter.since, Some(datetime!(2026-11-25 17:00 UTC)));
        assert_eq!(filter.event_type, Some(EventType::AsyncCompleted));
        assert_eq!(query("").window().unwrap(), Window::Day);
        assert_eq!(query("window=7d").window().unwrap(), Window::Week);
        assert!(query("outcome=timeout&outcome=lost").outcome().is_err());
    }

    fn window(since: Option<OffsetDateTime>, until: Option<OffsetDateTime>) -> EventFilter {
        EventFilter {
            since,
            until,
            ..EventFilter::default()
        }
    }

    fn field(result: Result<(), ApiError>) -> Option<String> {
        match result {
            Err(ApiError::Invalid { field, .. }) => field,
            _ => None,
        }
    }

    /// A reversed window, or a cursor from outside the window, would reach
    /// DynamoDB as a reversed BETWEEN or a start key outside it, which
    /// DynamoDB refuses (moto does not): both are a 400 naming the field.
    #[test]
    fn a_reversed_window_or_a_foreign_cursor_is_a_400() {
        let (t1, t2) = (
            datetime!(2026-11-25 17:00 UTC),
            datetime!(2026-11-26 17:00 UTC),
        );
        assert!(within_window(&window(Some(t1), Some(t2)), None).is_ok());
        assert_eq!(
            field(within_window(&window(Some(t2), Some(t1)), None)).as_deref(),
            Some("until")
        );
        assert_eq!(
            field(within_window(&window(Some(t1), Some(t1)), None)).as_deref(),
            Some("until")
        );
        let inside = format!("{}#evt_1", sortable_time(t1 + time::Duration::hours(1)));
        let early = format!("{}#evt_1", sortable_time(t1 - time::Duration::hours(1)));
        let late = format!("{}#evt_1", sortable_time(t2));
        let both = window(Some(t1), Some(t2));
        assert!(within_window(&both, Some(&inside)).is_ok());
        assert_eq!(
            field(within_window(&both, Some(&early))).as_deref(),
            Some("cursor")
        );
        assert_eq!(
            field(within_window(&both, Some(&late))).as_deref(),
            Some("cursor")
        );
        assert!(within_window(&window(None, None), Some(&early)).is_ok());
    }
}
