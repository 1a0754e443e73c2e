//! DNS for the delivery client: the SSRF rule is applied to every address a
//! name resolves to, at send time, so a name that points at 169.254.169.254 or
//! 127.0.0.1 (DNS rebinding) is never connected to.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;

use crate::ssrf;

/// The error a refused name resolves to; found again by walking error sources.
#[derive(Debug, thiserror::Error)]
#[error("every address of the host is in a forbidden range")]
pub struct BlockedByPolicy;

/// The addresses of `host`: the fixed answer if there is one, else the system's.
pub async fn lookup(
    overrides: &HashMap<String, Vec<IpAddr>>,
    host: &str,
) -> std::io::Result<Vec<SocketAddr>> {
    match overrides.get(host) {
        Some(ips) => Ok(ips.iter().map(|ip| SocketAddr::new(*ip, 0)).collect()),
        None => Ok(tokio::net::lookup_host((host, 0)).await?.collect()),
    }
}

/// The HTTP connector's resolver (a `tower` service from name to addresses).
#[derive(Clone)]
pub struct GuardedResolver {
    pub allow_private_targets: bool,
    /// Fixed answers for names (tests; never the internet).
    pub overrides: Arc<HashMap<String, Vec<IpAddr>>>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Resolving =
    Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, BoxError>> + Send>>;

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Resolving;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Resolving {
        let allow_private = self.allow_private_targets;
        let overrides = Arc::clone(&self.overrides);
        Box::pin(async move {
            let host = name.as_str();
            if !allow_private && ssrf::check_name(host).is_err() {
                return Err(Box::new(BlockedByPolicy) as BoxError);
            }
            let found = lookup(&overrides, host).await?;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| allow_private || !ssrf::is_forbidden(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(BlockedByPolicy) as BoxError);
            }
            Ok(allowed.into_iter())
        })
    }
}
