//! The webhooks dashboard: one page, its script and its style sheet, compiled
//! into the binary and served without an API key (the page asks for one and
//! calls the API with it). Nothing is fetched from anywhere else.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};

const INDEX_HTML: &str = include_str!("../dashboard/index.html");
const APP_JS: &str = include_str!("../dashboard/app.js");
const APP_CSS: &str = include_str!("../dashboard/app.css");

/// No inline script or style, nothing from another origin, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asset {
    Page,
    /// `/dashboard/`: the page's relative asset paths would miss from there.
    PageWithSlash,
    Script,
    Style,
}

pub fn serve(asset: Asset) -> Response<Body> {
    let (text, content_type) = match asset {
        Asset::PageWithSlash => return moved_to_page(),
        Asset::Page => (INDEX_HTML, "text/html; charset=utf-8"),
        Asset::Script => (APP_JS, "text/javascript; charset=utf-8"),
        Asset::Style => (APP_CSS, "text/css; charset=utf-8"),
    };
    let mut response = Response::new(Body::Text(text.to_owned()));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    let fixed = [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// A permanent redirect to `/dashboard`, relative so that it holds behind any
/// base path.
fn moved_to_page() -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("../dashboard"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/dashboard/` redirects to `/dashboard`: served there, the page's
    /// relative `app.js` would resolve to `/dashboard/dashboard/app.js`, and
    /// the page would stay blank.
    #[tokio::test]
    async fn the_page_with_a_trailing_slash_redirects() {
        let app = crate::App::new(
            shared::store::MemoryStore::default(),
            shared::Settings::with_table("unused"),
        );
        for (path, status, location) in [
            ("/dashboard/", 308, Some("../dashboard")),
            ("/dashboard", 200, None),
        ] {
            let req = crate::apigw::request("GET", path, &[], None, "r").unwrap();
            let response = crate::handle(&app, req).await.unwrap();
            assert_eq!(response.status().as_u16(), status, "{path}");
            assert_eq!(
                response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok()),
                location,
                "{path}"
            );
        }
    }

    /// The quoted names of the array `app.js` declares as `const NAME = [`.
    fn names_in_js(name: &str) -> Vec<String> {
        let start = format!("const {name} = [");
        let from = APP_JS.find(&start).expect("app.js declares the array") + start.len();
        let len = APP_JS[from..].find("];").expect("the array ends with `];`");
        APP_JS[from..from + len]
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .strip_prefix('\'')
                    .and_then(|e| e.strip_suffix('\''))
                    .unwrap_or_else(|| panic!("not a quoted name in {name}: {entry}"))
                    .to_owned()
            })
            .collect()
    }

    /// The log's outcome filter lists `OUTCOMES` from app.js, a copy of
    /// `Outcome::ALL`: an outcome added in Rust and not there could not be
    /// filtered on. Compared as whole lists, so that an entry missing, extra,
    /// misspelt or out of order fails. The same for the Activity page's
    /// `AUDIT_ACTIONS` and `Action::ALL`.
    #[test]
    fn the_outcome_filter_lists_every_outcome_in_order() {
        let in_rust: Vec<String> = shared::delivery::Outcome::ALL
            .iter()
            .map(|o| o.as_str().to_owned())
            .collect();
        assert_eq!(names_in_js("OUTCOMES"), in_rust);
    }

    #[test]
    fn the_activity_filter_lists_every_action_in_order() {
        let in_rust: Vec<String> = shared::audit::Action::ALL
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect();
        assert_eq!(names_in_js("AUDIT_ACTIONS"), in_rust);
    }
}
