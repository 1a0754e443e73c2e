//! A small client for the local API (`webhooks local`): one HTTP/1.1
//! connection per call, bearer API key, JSON in and out. Keys and bodies are
//! never printed; errors name the call, not its content.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// Longer than any answer the API should take under load.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The API's answer to one call.
pub struct Answer {
    pub status: u16,
    /// `Retry-After` in seconds, when present as a number.
    pub retry_after: Option<u64>,
    /// The JSON body (`Null` when empty or not JSON).
    pub body: Value,
}

/// The local API on 127.0.0.1.
#[derive(Clone, Copy)]
pub struct Api {
    pub addr: SocketAddr,
}

impl Api {
    /// One call. `key` is the tenant's API key.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        let what = format!("{method} {}", path.split('?').next().unwrap_or(path));
        tokio::time::timeout(CALL_TIMEOUT, self.call_inner(method, path, key, body))
            .await
            .map_err(|_| format!("{what}: no answer within {CALL_TIMEOUT:?}"))?
            .map_err(|e| format!("{what}: {e}"))
    }

    async fn call_inner(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        let conn = tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, self.addr.to_string());
        if let Some(key) = key {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let payload = match body {
            Some(b) => {
                req = req.header(http::header::CONTENT_TYPE, "application/json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(payload))
            .map_err(|_| "building the request".to_owned())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        conn.abort();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }

    /// A call that must answer `want`; returns its body.
    pub async fn expect(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<&Value>,
        want: u16,
    ) -> Result<Value, String> {
        let what = format!("{method} {}", path.split('?').next().unwrap_or(path));
        let answer = self.call(method, path, Some(key), body).await?;
        if answer.status != want {
            let code = answer
                .body
                .pointer("/error/code")
                .and_then(Value::as_str)
                .unwrap_or("");
            return Err(format!(
                "{what}: answered {} {code}, expected {want}",
                answer.status
            ));
        }
        Ok(answer.body)
    }
}

/// One record of `GET /webhooks/{id}/deliveries`, the fields the bench uses.
#[derive(Clone, Debug)]
pub struct Record {
    pub event_id: String,
    pub attempt: u64,
    pub outcome: String,
}

/// Every record in a webhook's delivery log, following `next_cursor`.
pub async fn deliveries(api: &Api, key: &str, webhook: &str) -> Result<Vec<Record>, String> {
    let mut records = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/webhooks/{webhook}/deliveries?limit=100");
        if let Some(c) = &cursor {
            let encoded: String = url::form_urlencoded::byte_serialize(c.as_bytes()).collect();
            path.push_str("&cursor=");
            path.push_str(&encoded);
        }
        let page = api.expect(Method::GET, &path, key, None, 200).await?;
        for r in page
            .get("data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            records.push(Record {
                event_id: r
                    .get("event_id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                attempt: r.get("attempt").and_then(Value::as_u64).unwrap_or(0),
                outcome: r
                    .get("outcome")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            });
        }
        cursor = page
            .get("next_cursor")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if cursor.is_none() {
            return Ok(records);
        }
    }
}
