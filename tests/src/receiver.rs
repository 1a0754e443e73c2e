//! A real HTTP/1.1 receiver on 127.0.0.1 whose behaviour each test chooses:
//! answer, hang, close the connection, or stream a large body slowly; and the
//! hostile ones: reset the connection, send a huge body fast, trickle the
//! response head.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Debug)]
pub enum Behavior {
    Respond {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// Answers with `status` after `after`.
    Delayed { status: u16, after: Duration },
    /// Reads the request, then never answers.
    Hang,
    /// Writes these bytes as soon as a client connects (not TLS, not HTTP).
    Garbage(&'static [u8]),
    /// Reads the request, then closes the connection without a response.
    Close,
    /// Answers 200 at once, then sends `total` bytes in `chunk`s every `every`.
    SlowStream {
        total: usize,
        chunk: usize,
        every: Duration,
    },
    /// Reads the request, then resets the connection (SO_LINGER 0: a TCP RST).
    Reset,
    /// Answers 200 with a body of `total` bytes written as fast as the
    /// client takes them.
    HugeBody { total: usize },
    /// Writes a 200 response head one byte per `every`.
    TrickleHead { every: Duration },
    /// The n-th request (counted over all connections) gets the n-th status;
    /// the last one repeats. An outage, then recovery: `[503, 503, 200]`.
    Sequence(Vec<u16>),
}

impl Behavior {
    pub fn status(status: u16) -> Self {
        Behavior::Respond {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
}

/// How a TLS receiver answers.
#[derive(Clone, Debug)]
pub enum TlsAnswer {
    /// 200, empty, at once.
    Ok,
    /// `status` with a JSON `body` after `delay` (a token endpoint).
    Json {
        status: u16,
        body: String,
        delay: Duration,
    },
    /// A 200 head of about `head_bytes` (one padding header) at once, and its
    /// two-byte body `hold` later: a hostile receiver holding the client's
    /// buffers for as long as it can.
    BigHead { head_bytes: usize, hold: Duration },
}

impl TlsAnswer {
    async fn write(&self, out: &mut (impl AsyncWriteExt + Unpin)) -> std::io::Result<()> {
        match self {
            TlsAnswer::Ok => {
                out.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await?
            }
            TlsAnswer::Json {
                status,
                body,
                delay,
            } => {
                tokio::time::sleep(*delay).await;
                // One write: a head and a body in two TLS records would
                // meet Nagle's algorithm and a delayed ACK (40 ms).
                let answer = format!(
                    "HTTP/1.1 {status} Status\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                out.write_all(answer.as_bytes()).await?;
            }
            TlsAnswer::BigHead { head_bytes, hold } => {
                let head = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-pad: \r\n\r\n";
                let pad = "a".repeat(head_bytes.saturating_sub(head.len()));
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-pad: {pad}\r\n\r\n");
                out.write_all(head.as_bytes()).await?;
                out.flush().await?;
                tokio::time::sleep(*hold).await;
                out.write_all(b"ok").await?;
            }
        }
        out.flush().await
    }
}

#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// SHA-256 (hex) of the client certificate presented in the TLS handshake.
    pub client_certificate: Option<String>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

pub struct Receiver {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Received>>>,
    connections: Arc<AtomicUsize>,
    /// Response bytes written (head and body).
    written: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub async fn start(behavior: Behavior) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let written = Arc::new(AtomicUsize::new(0));
        let (reqs, conns, wrote) = (
            Arc::clone(&requests),
            Arc::clone(&connections),
            Arc::clone(&written),
        );
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                conns.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(
                    stream,
                    behavior.clone(),
                    Arc::clone(&reqs),
                    Arc::clone(&wrote),
                ));
            }
        });
        Self {
            addr,
            requests,
            connections,
            written,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A receiver over TLS with a certificate for `localhost` from `ca`,
    /// answering 200 to every request. Its URL is [`Receiver::https_url`]
    /// (resolve `localhost` to 127.0.0.1 with a DNS override).
    pub async fn start_tls(ca: &crate::tls::TestCa) -> Self {
        Self::start_tls_answering(ca, TlsAnswer::Ok).await
    }

    /// A TLS receiver answering every request as `answer` says.
    pub async fn start_tls_answering(ca: &crate::tls::TestCa, answer: TlsAnswer) -> Self {
        Self::start_tls_with(ca.acceptor(), answer).await
    }

    /// A TLS receiver with the server side `acceptor` (one that requires a
    /// client certificate, for mutual TLS); each request records the
    /// client certificate it came with.
    pub async fn start_tls_with(acceptor: tokio_rustls::TlsAcceptor, answer: TlsAnswer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (reqs, conns) = (Arc::clone(&requests), Arc::clone(&connections));
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                conns.fetch_add(1, Ordering::SeqCst);
                let (acceptor, reqs, answer) =
                    (acceptor.clone(), Arc::clone(&reqs), answer.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let client_certificate = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| crate::tls::sha256_hex(c));
                    let mut buf = Vec::new();
                    while let Some(mut request) = read_request(&mut tls, &mut buf).await {
                        request.client_certificate = client_certificate.clone();
                        if let Ok(mut r) = reqs.lock() {
                            r.push(request);
                        }
                        if answer.write(&mut tls).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            requests,
            connections,
            written: Arc::new(AtomicUsize::new(0)),
            task,
        }
    }

    /// `https://localhost:<port><path>`: the name the TLS receiver's certificate holds.
    pub fn https_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    pub fn requests(&self) -> Vec<Received> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Response bytes written so far, to any client (counted by
    /// `HugeBody` and `TrickleHead`).
    pub fn written(&self) -> usize {
        self.written.load(Ordering::SeqCst)
    }
}

async fn serve(
    mut stream: TcpStream,
    behavior: Behavior,
    requests: Arc<Mutex<Vec<Received>>>,
    written: Arc<AtomicUsize>,
) {
    if let Behavior::Garbage(bytes) = behavior {
        let _ = stream.write_all(bytes).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        return;
    }
    let mut buf = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        let nth = match requests.lock() {
            Ok(mut r) => {
                r.push(request);
                r.len()
            }
            Err(_) => return,
        };
        if let Behavior::Sequence(statuses) = &behavior {
            let status = statuses
                .get(nth - 1)
                .or(statuses.last())
                .copied()
                .unwrap_or(200);
            let head = format!("HTTP/1.1 {status} Status\r\ncontent-length: 0\r\n\r\n");
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            continue;
        }
        match &behavior {
            Behavior::Respond {
                status,
                headers,
                body,
            } => {
                let mut head = format!(
                    "HTTP/1.1 {status} Status\r\ncontent-length: {}\r\n",
                    body.len()
                );
                for (name, value) in headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                if stream.write_all(head.as_bytes()).await.is_err()
                    || stream.write_all(body).await.is_err()
                {
                    return;
                }
            }
            Behavior::Delayed { status, after } => {
                tokio::time::sleep(*after).await;
                let head = format!("HTTP/1.1 {status} Status\r\ncontent-length: 0\r\n\r\n");
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
            }
            Behavior::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            // Garbage is written on connect; a sequence is answered above.
            Behavior::Close | Behavior::Garbage(_) | Behavior::Sequence(_) => return,
            Behavior::SlowStream {
                total,
                chunk,
                every,
            } => {
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {total}\r\n\r\n");
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let piece = vec![b'x'; *chunk];
                let mut sent = 0;
                while sent < *total {
                    tokio::time::sleep(*every).await;
                    let n = (*total - sent).min(*chunk);
                    if stream.write_all(&piece[..n]).await.is_err() {
                        return;
                    }
                    sent += n;
                }
            }
            Behavior::Reset => {
                let _ = stream.set_zero_linger();
                return;
            }
            Behavior::HugeBody { total } => {
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {total}\r\n\r\n");
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                written.fetch_add(head.len(), Ordering::SeqCst);
                let piece = vec![b'x'; 64 * 1024];
                let mut sent = 0;
                while sent < *total {
                    let n = (*total - sent).min(piece.len());
                    if stream.write_all(&piece[..n]).await.is_err() {
                        return;
                    }
                    written.fetch_add(n, Ordering::SeqCst);
                    sent += n;
                }
            }
            Behavior::TrickleHead { every } => {
                let head = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                for byte in head {
                    if stream.write_all(&[*byte]).await.is_err() {
                        return;
                    }
                    written.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(*every).await;
                }
            }
        }
    }
}

/// Reads one request (head and Content-Length body); None when the peer is gone.
async fn read_request<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> Option<Received> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let body_start = head_end + 4;
    while buf.len() < body_start + length {
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[body_start..body_start + length].to_vec();
    buf.drain(..body_start + length);
    Some(Received {
        method,
        path,
        headers,
        body,
        client_certificate: None,
    })
}
