//! API Gateway HTTP API requests (payload format 2.0), shaped like AWS's
//! own examples, and the function's answers read back; which lines of
//! `api::routes()` the calls covered.

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

/// One request to the api function.
pub struct Request<'a> {
    pub method: &'a str,
    /// The path and query, as the client sent them.
    pub target: &'a str,
    pub key: Option<&'a str>,
    pub body: Option<Vec<u8>>,
    pub content_type: Option<&'a str>,
    /// Sent as API Gateway sends a binary body: base64, `isBase64Encoded`.
    pub base64: bool,
    pub cookies: Vec<&'a str>,
}

impl<'a> Request<'a> {
    pub fn new(method: &'a str, target: &'a str, key: &'a str) -> Self {
        Request {
            method,
            target,
            key: Some(key),
            body: None,
            content_type: None,
            base64: false,
            cookies: Vec::new(),
        }
    }

    pub fn json(mut self, body: &Value) -> Self {
        self.body = Some(body.to_string().into_bytes());
        self.content_type = Some("application/json");
        self
    }

    /// The event API Gateway hands the function.
    pub fn event(&self, n: u64) -> Value {
        let (path, query) = self.target.split_once('?').unwrap_or((self.target, ""));
        let mut headers = serde_json::Map::new();
        headers.insert(
            "host".into(),
            json!("rehearsal.execute-api.eu-west-1.amazonaws.com"),
        );
        headers.insert("user-agent".into(), json!("rehearsal/1.0"));
        headers.insert("x-forwarded-proto".into(), json!("https"));
        if let Some(key) = self.key {
            headers.insert("authorization".into(), json!(format!("Bearer {key}")));
        }
        if let Some(ct) = self.content_type {
            headers.insert("content-type".into(), json!(ct));
        }
        let mut event = json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": query,
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "rehearsal",
                "domainName": "rehearsal.execute-api.eu-west-1.amazonaws.com",
                "domainPrefix": "rehearsal",
                "http": {
                    "method": self.method,
                    "path": path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "192.0.2.10",
                    "userAgent": "rehearsal/1.0"
                },
                "requestId": format!("rehearsal-{n}"),
                "routeKey": "$default",
                "stage": "$default",
                "time": "27/Nov/2026:17:00:00 +0000",
                "timeEpoch": 1795798800000u64
            },
            "isBase64Encoded": self.base64
        });
        if !query.is_empty() {
            let params: serde_json::Map<String, Value> = query
                .split('&')
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.to_owned(), json!(v)))
                .collect();
            event["queryStringParameters"] = Value::Object(params);
        }
        if !self.cookies.is_empty() {
            event["cookies"] = json!(self.cookies);
        }
        if let Some(body) = &self.body {
            event["body"] = if self.base64 {
                json!(STANDARD.encode(body))
            } else {
                json!(String::from_utf8_lossy(body))
            };
        }
        event
    }
}

/// The function's answer, as API Gateway reads it.
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn parse(raw: &[u8]) -> Result<Answer, String> {
        let v: Value = serde_json::from_slice(raw).map_err(|e| format!("not JSON: {e}"))?;
        let status = v["statusCode"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .ok_or("no statusCode")?;
        let text = v["body"].as_str().unwrap_or_default();
        let body = if v["isBase64Encoded"].as_bool() == Some(true) {
            STANDARD.decode(text).map_err(|e| format!("body: {e}"))?
        } else {
            text.as_bytes().to_vec()
        };
        let content_type = v["headers"]["content-type"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok(Answer {
            status,
            content_type,
            body,
        })
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Which (route, method) pairs of `api::routes()` have been called.
#[derive(Default)]
pub struct Coverage {
    called: BTreeSet<(&'static str, String)>,
}

impl Coverage {
    pub fn record(&mut self, method: &str, target: &str) {
        let path = target.split('?').next().unwrap_or_default();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        for (pattern, _) in api::routes() {
            let wanted: Vec<&str> = pattern.trim_matches('/').split('/').collect();
            let fits = wanted.len() == segments.len()
                && wanted
                    .iter()
                    .zip(&segments)
                    .all(|(w, s)| w == s || (w.starts_with('{') && !s.is_empty()));
            if fits {
                self.called.insert((pattern, method.to_owned()));
            }
        }
    }

    /// The routes never called.
    pub fn missing(&self) -> Vec<String> {
        api::routes()
            .into_iter()
            .filter(|(pattern, m)| !self.called.contains(&(*pattern, m.to_string())))
            .map(|(pattern, m)| format!("{m} {pattern}"))
            .collect()
    }
}
