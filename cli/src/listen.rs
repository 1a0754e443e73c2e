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
        let verdict = verdict(&req, secret.as_ref());
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

fn verdict(req: &Received, secret: Option<&SigningSecret>) -> &'static str {
    let Some(secret) = secret else {
        return "not checked (pass --secret)";
    };
    let (Some(id), Some(ts), Some(sigs)) = (
        header(req, "webhook-id"),
        header(req, "webhook-timestamp"),
        header(req, "webhook-signature"),
    ) else {
        return "missing webhook-* headers";
    };
    let Ok(ts) = ts.parse::<i64>() else {
        return "bad webhook-timestamp";
    };
    let expected = secret.sign(id, ts, &req.body);
    if sigs.split(' ').any(|s| s == expected) {
        "valid"
    } else {
        "INVALID"
    }
}
