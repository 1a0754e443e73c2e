//! Plain HTTP requests as API Gateway HTTP API (payload 2.0) events, for the
//! local server and the tests: they go through the same `lambda_http` parsing
//! that the Lambda runtime applies to real events.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::Request;
use serde_json::{Map, Value, json};

/// Builds the event API Gateway would send for this request, and parses it
/// as the Lambda runtime does.
pub fn request(
    method: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
    request_id: &str,
) -> Result<Request, String> {
    let (raw_path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut header_map = Map::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        // API Gateway joins repeated headers with commas.
        let joined = match header_map.get(&name).and_then(Value::as_str) {
            Some(prev) => format!("{prev},{value}"),
            None => value.clone(),
        };
        header_map.insert(name, Value::String(joined));
    }
    let (body, is_base64) = match body {
        None | Some([]) => (Value::Null, false),
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => (Value::String(text.to_owned()), false),
            Err(_) => (Value::String(STANDARD.encode(bytes)), true),
        },
    };
    let event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": header_map,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": "127.0.0.1",
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": ""
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 0
        },
        "body": body,
        "isBase64Encoded": is_base64
    });
    lambda_http::request::from_str(&event.to_string()).map_err(|e| e.to_string())
}
