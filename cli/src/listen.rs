//! `webhooks listen`: a receiver for trying deliveries out. Prints each
//! request, checks its signature when given the secret, answers 200.

use std::net::{Ipv4Addr, SocketAddr};

use hyper::StatusCode;
use shared::signing::SigningSecret;

use api::local::{self as http_server, Received, reply};

pub async fn run(port: u16, secret: Option<SigningSecret>) -> Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    eprintln!("listening on http://{addr}/ (Ctrl-C stops)");
    let server = http_server::serve(addr, move |req| {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let verdict = verdict(&req, secret.as_ref(), now);
        println!(
            "{} {}  webhook-id={}  signature: {verdict}\n{}",
            req.method,
            req.path_and_query,
            header(&req, "webhook-id").unwrap_or("-"),
            String::from_utf8_lossy(&req.body)
        );
        async { reply(StatusCode::OK, "") }
    });
    tokio::select! {
        result = server => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

fn header<'a>(req: &'a Received, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// What a receiver should check, as `shared::signing::SigningSecret::verify`
/// does it: the timestamp within 5 minutes, then a constant-time compare.
fn verdict(req: &Received, secret: Option<&SigningSecret>, now: i64) -> String {
    let Some(secret) = secret else {
        return "not checked (pass --secret)".into();
    };
    let (Some(id), Some(ts), Some(sigs)) = (
        header(req, "webhook-id"),
        header(req, "webhook-timestamp"),
        header(req, "webhook-signature"),
    ) else {
        return "missing webhook-* headers".into();
    };
    match secret.verify(id, ts, sigs, &req.body, now) {
        Ok(()) => "valid".into(),
        Err(e) => format!("INVALID ({e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(secret: &SigningSecret, signed_at: i64) -> Received {
        let body = hyper::body::Bytes::from_static(b"{}");
        Received {
            method: "POST".into(),
            path_and_query: "/".into(),
            headers: vec![
                ("webhook-id".into(), "evt_1".into()),
                ("webhook-timestamp".into(), signed_at.to_string()),
                (
                    "webhook-signature".into(),
                    secret.sign("evt_1", signed_at, &body),
                ),
            ],
            body,
        }
    }

    /// A replayed delivery (a valid signature from an hour ago) is refused:
    /// the example customers read must not accept it.
    #[test]
    fn a_replay_is_invalid() {
        let secret = SigningSecret::generate();
        let now = 1_764_000_000;
        assert_eq!(verdict(&request(&secret, now), Some(&secret), now), "valid");
        assert!(verdict(&request(&secret, now - 3600), Some(&secret), now).starts_with("INVALID"));
        let other = SigningSecret::generate();
        assert!(verdict(&request(&other, now), Some(&secret), now).starts_with("INVALID"));
    }
}
