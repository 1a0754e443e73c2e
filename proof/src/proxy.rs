//! A fault-injecting TCP proxy between the dispatcher and moto's DynamoDB.
//! While cut, it resets every open connection and every new one at once.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Default)]
pub struct ProxyStats {
    pub connections: AtomicU64,
    /// Connections refused (reset on accept) while cut.
    pub refused: AtomicU64,
    /// Open connections reset when the cut began.
    pub severed: AtomicU64,
}

pub struct Proxy {
    pub addr: SocketAddr,
    cut: watch::Sender<bool>,
    pub stats: Arc<ProxyStats>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (cut, cut_rx) = watch::channel(false);
        let stats = Arc::new(ProxyStats::default());
        let st = Arc::clone(&stats);
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                st.connections.fetch_add(1, Ordering::SeqCst);
                if *cut_rx.borrow() {
                    st.refused.fetch_add(1, Ordering::SeqCst);
                    reset(inbound);
                    continue;
                }
                tokio::spawn(relay(inbound, upstream, cut_rx.clone(), Arc::clone(&st)));
            }
        });
        Ok(Self { addr, cut, stats })
    }

    /// Cuts (true) or restores (false) DynamoDB.
    pub fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

/// Closes with a TCP reset rather than a clean FIN.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn relay(
    mut inbound: TcpStream,
    upstream: SocketAddr,
    mut cut: watch::Receiver<bool>,
    stats: Arc<ProxyStats>,
) {
    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
        reset(inbound);
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = cut.wait_for(|c| *c) => {
            stats.severed.fetch_add(1, Ordering::SeqCst);
            reset(inbound);
            reset(outbound);
        }
    }
}
