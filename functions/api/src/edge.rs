//! The edge: when the API is deployed behind CloudFront with a WAF web ACL
//! (template parameter `EdgeWebAclArn`), the edge adds a secret header to
//! every request it forwards. A request without it reached API Gateway's
//! own address directly, around the web ACL's per-address rate rule, and
//! is refused before anything else is done for it.

use lambda_http::Request;

use crate::{ApiError, App};

/// The header the edge adds (`OriginCustomHeaders` in the template).
pub const ORIGIN_VERIFY_HEADER: &str = "x-origin-verify";

/// `Ok` when no edge is configured, or when `req` came through it.
pub fn came_through<S>(app: &App<S>, req: &Request) -> Result<(), ApiError> {
    let Some(secret) = &app.settings.origin_secret else {
        return Ok(());
    };
    let presented = req
        .headers()
        .get(ORIGIN_VERIFY_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if secret.matches(presented) {
        Ok(())
    } else {
        Err(ApiError::NotThroughEdge)
    }
}

#[cfg(test)]
mod tests {
    use shared::settings::OriginSecret;

    use crate::testing::{app_with, send, send_with};

    /// Behind the edge, a request without the edge's header, or with
    /// another value, is `403 not_through_edge`, public routes included;
    /// with it, the request is answered as usual (the control); without an
    /// edge configured nothing is asked.
    #[tokio::test]
    async fn behind_the_edge_only_requests_through_it_are_answered() {
        let (app, key) = app_with(shared::Settings {
            origin_secret: Some(OriginSecret("s3cret-from-the-edge".into())),
            ..crate::testing::settings()
        })
        .await;
        for (header, path) in [
            (None, "/webhooks"),
            (Some("wrong"), "/webhooks"),
            (None, "/openapi.json"),
        ] {
            let headers: Vec<(&str, &str)> = header
                .map(|h| vec![("x-origin-verify", h)])
                .unwrap_or_default();
            let r = send_with(&app, Some(&key), "GET", path, None, &headers).await;
            assert_eq!((r.status, r.code()), (403, "not_through_edge"), "{path}");
        }
        let through = [("x-origin-verify", "s3cret-from-the-edge")];
        let r = send_with(&app, Some(&key), "GET", "/webhooks", None, &through).await;
        assert_eq!(r.status, 200, "{}", r.body);

        let (plain, key) = crate::testing::app(false).await;
        assert_eq!(
            send(&plain, Some(&key), "GET", "/webhooks", None)
                .await
                .status,
            200
        );
    }
}
