//! `GET /egress-ips`: the addresses deliveries come from, for customers to
//! allowlist. With the template's `StaticEgress` on, both functions run in
//! a VPC whose NAT gateways' Elastic IPs are every delivery's source
//! (`EGRESS_IPS`); without, deliveries come from Lambda's shared addresses,
//! which change, and the list is empty.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde::Serialize;
use shared::Settings;

use crate::response;

#[derive(Serialize)]
struct EgressIps {
    egress_ips: Vec<String>,
    /// Whether the addresses are fixed: false, an allowlist by address
    /// cannot work (check the signature instead).
    #[serde(rename = "static")]
    fixed: bool,
}

/// The stack's egress addresses, as configured at start.
pub fn list(settings: &Settings) -> Response<Body> {
    let egress_ips: Vec<String> = settings
        .egress_ips
        .iter()
        .map(ToString::to_string)
        .collect();
    let fixed = !egress_ips.is_empty();
    response::json(StatusCode::OK, &EgressIps { egress_ips, fixed })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use shared::api_key::Scope;

    use crate::testing::{app, app_with, key_for, send, settings};

    #[tokio::test]
    async fn the_addresses_of_a_static_egress_stack_for_any_key() {
        let (app, _) = app_with(shared::Settings {
            egress_ips: vec![
                "203.0.113.7".parse().unwrap(),
                "198.51.100.9".parse().unwrap(),
            ],
            ..settings()
        })
        .await;
        // A read key is enough: the route changes nothing.
        let read = key_for(&app, Scope::Read).await;
        let got = send(&app, Some(&read), "GET", "/egress-ips", None).await;
        assert_eq!(got.status, 200, "{}", got.body);
        assert_eq!(
            got.headers["content-type"], "application/json",
            "{:?}",
            got.headers
        );
        assert_eq!(
            got.body,
            json!({"egress_ips": ["203.0.113.7", "198.51.100.9"], "static": true})
        );
        let refused = send(&app, None, "GET", "/egress-ips", None).await;
        assert_eq!((refused.status, refused.code()), (401, "unauthorized"));
    }

    #[tokio::test]
    async fn without_static_egress_the_list_is_empty() {
        let (app, key) = app(false).await;
        let got = send(&app, Some(&key), "GET", "/egress-ips", None).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body, json!({"egress_ips": [], "static": false}));
    }
}
