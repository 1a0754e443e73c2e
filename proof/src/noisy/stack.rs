//! The stack under test, as an operator runs it: `webhooks local` in a child
//! process whose AWS traffic goes through the counting proxy, API keys made
//! with `webhooks api-key create` (or, with the store in memory, asked of the
//! child itself), and the queues it created (the events queue, and the slow
//! lane `<queue>-slow` where the version has one).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::QueueAttributeName;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Mutex;

use crate::api::Api;

/// How the child is started.
pub struct LocalStack {
    pub bin: PathBuf,
    pub table: String,
    pub queue: String,
    pub concurrency: usize,
    /// The counting proxy: every AWS endpoint of the child.
    pub proxy: SocketAddr,
    /// The child's standard error (its logs); standard output, which carries
    /// the demo tenant's API key in the banner, is discarded (with the store
    /// in memory it is read for the keys asked for).
    pub log: PathBuf,
    /// `webhooks local --store memory`: no DynamoDB, so moto serves the
    /// queues alone.
    pub memory: bool,
}

/// Where the tenants' API keys come from.
pub enum Keys {
    /// `webhooks --table T api-key create`, a process of its own.
    Cli { bin: PathBuf, table: String },
    /// The child with the store in memory: a tenant written on its standard
    /// input, its key read back from its standard output.
    Child(Mutex<(ChildStdin, Lines<BufReader<ChildStdout>>)>),
}

impl Keys {
    /// A full API key for `tenant` (never shown).
    pub async fn make(&self, tenant: &str) -> Result<String, String> {
        match self {
            Keys::Cli { bin, table } => api_key(bin, table, tenant).await,
            Keys::Child(pipes) => {
                let mut pipes = pipes.lock().await;
                let (stdin, stdout) = &mut *pipes;
                stdin
                    .write_all(format!("{tenant}\n").as_bytes())
                    .await
                    .map_err(|e| format!("asking webhooks local for a key: {e}"))?;
                stdin.flush().await.map_err(|e| e.to_string())?;
                let wanted = format!("api-key {tenant} ");
                while let Some(line) = stdout.next_line().await.map_err(|e| e.to_string())? {
                    if let Some(key) = line.strip_prefix(&wanted) {
                        return Ok(key.trim().to_owned());
                    }
                    if line.starts_with("error ") {
                        return Err(format!("webhooks local refused a key for {tenant}: {line}"));
                    }
                }
                Err("webhooks local closed its standard output".into())
            }
        }
    }
}

impl LocalStack {
    /// Starts `webhooks local` on a free port and waits until its API answers.
    pub async fn start(&self) -> Result<(Child, Api, Keys), String> {
        let port = free_port()?;
        let log =
            std::fs::File::create(&self.log).map_err(|e| format!("{}: {e}", self.log.display()))?;
        let proxy = format!("http://{}", self.proxy);
        let mut child = Command::new(&self.bin)
            .arg("--table")
            .arg(&self.table)
            .arg("local")
            .arg("--port")
            .arg(port.to_string())
            .arg("--queue")
            .arg(&self.queue)
            .arg("--concurrency")
            .arg(self.concurrency.to_string())
            .args(if self.memory {
                &["--store", "memory"][..]
            } else {
                &[]
            })
            .env("AWS_ENDPOINT_URL", &proxy)
            .env("AWS_ENDPOINT_URL_DYNAMODB", &proxy)
            .env("AWS_ENDPOINT_URL_SQS", &proxy)
            .stdin(if self.memory {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(if self.memory {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.bin.display()))?;
        let keys = match (child.stdin.take(), child.stdout.take()) {
            (Some(stdin), Some(stdout)) => {
                Keys::Child(Mutex::new((stdin, BufReader::new(stdout).lines())))
            }
            _ => Keys::Cli {
                bin: self.bin.clone(),
                table: self.table.clone(),
            },
        };
        let api = Api {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "webhooks local exited ({status}); see {}",
                    self.log.display()
                ));
            }
            if api
                .call(http::Method::GET, "/openapi.json", None, None)
                .await
                .is_ok_and(|a| a.status == 200)
            {
                return Ok((child, api, keys));
            }
            if Instant::now() > deadline {
                return Err("webhooks local did not answer within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

/// `webhooks --table T api-key create --tenant X`: the key it prints (never shown).
pub async fn api_key(bin: &Path, table: &str, tenant: &str) -> Result<String, String> {
    let out = Command::new(bin)
        .arg("--table")
        .arg(table)
        .args(["api-key", "create", "--tenant", tenant])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("api-key create: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "api-key create --tenant {tenant} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let key = String::from_utf8(out.stdout)
        .map_err(|_| "api-key create printed something that is not UTF-8")?
        .trim()
        .to_owned();
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err("api-key create did not print one key on one line".into());
    }
    Ok(key)
}

/// The URL of queue `name`, or None if it does not exist.
pub async fn queue_url(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<Option<String>, String> {
    match sqs.get_queue_url().queue_name(name).send().await {
        Ok(out) => Ok(out.queue_url),
        Err(e) => {
            let missing = e
                .as_service_error()
                .is_some_and(|s| s.is_queue_does_not_exist());
            if missing {
                Ok(None)
            } else {
                Err(format!("GetQueueUrl {name}: {}", DisplayErrorContext(e)))
            }
        }
    }
}

/// Messages in a queue: visible, in flight and delayed.
pub async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<u64, String> {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| format!("GetQueueAttributes: {}", DisplayErrorContext(e)))?
        .attributes
        .unwrap_or_default();
    attrs.values().try_fold(0u64, |sum, v| {
        v.parse::<u64>()
            .map(|n| sum + n)
            .map_err(|_| "GetQueueAttributes: a count that is not a number".to_owned())
    })
}

/// The queues of the stack: the events queue, and the slow lane if present.
pub struct Queues {
    pub events: String,
    pub slow_name: String,
    pub slow: Option<String>,
}

/// What the queues held at one moment (None: the slow lane does not exist).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Backlog {
    pub events: Option<u64>,
    pub slow: Option<u64>,
}

impl Backlog {
    /// Both known and zero (an absent slow lane counts as empty).
    pub fn empty(&self) -> bool {
        self.events == Some(0) && self.slow.unwrap_or(0) == 0
    }
}

impl Queues {
    /// Looks for the slow lane again (a version may create it late).
    pub async fn refresh(&mut self, sqs: &aws_sdk_sqs::Client) {
        if self.slow.is_none() {
            self.slow = queue_url(sqs, &self.slow_name).await.ok().flatten();
        }
    }

    /// The depth of each queue (None for the events queue if it could not be read).
    pub async fn backlog(&self, sqs: &aws_sdk_sqs::Client) -> Backlog {
        let events = depth(sqs, &self.events).await.ok();
        let slow = match &self.slow {
            Some(url) => Some(depth(sqs, url).await.unwrap_or(u64::MAX)),
            None => None,
        };
        Backlog { events, slow }
    }
}

/// How a wait for empty queues ended.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Drain {
    /// From `from` to the first of two empty readings; None if never empty.
    pub secs: Option<f64>,
    pub drained: bool,
    /// Messages purged after giving up (so the next phase starts empty).
    pub purged: Option<u64>,
}

/// Empties every queue (PurgeQueue); returns how many messages they held.
pub async fn purge(sqs: &aws_sdk_sqs::Client, queues: &Queues) -> Result<u64, String> {
    let held = queues.backlog(sqs).await;
    for url in std::iter::once(&queues.events).chain(queues.slow.iter()) {
        sqs.purge_queue()
            .queue_url(url)
            .send()
            .await
            .map_err(|e| format!("PurgeQueue: {}", DisplayErrorContext(e)))?;
    }
    Ok(held.events.unwrap_or(0) + held.slow.unwrap_or(0))
}

/// Waits until every queue is empty on two readings at least 0.5 s apart, or
/// `give_up`. moto's GetQueueAttributes scans the queue (about 0.25 s at
/// 1,000 messages, 0.8 s at 3,000), so the readings are spaced to at least
/// three times the last one's duration: the bench must not be moto's load.
pub async fn drain(
    sqs: &aws_sdk_sqs::Client,
    queues: &Queues,
    from: Instant,
    give_up: Duration,
) -> Drain {
    let mut first_empty: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let backlog = queues.backlog(sqs).await;
        let pause = (now.elapsed() * 3).max(Duration::from_millis(500));
        if backlog.empty() {
            match first_empty {
                Some(at) => {
                    return Drain {
                        secs: Some(at.duration_since(from).as_secs_f64()),
                        drained: true,
                        purged: None,
                    };
                }
                None => first_empty = Some(now),
            }
        } else {
            first_empty = None;
        }
        if now.duration_since(from) > give_up {
            return Drain {
                secs: None,
                drained: false,
                purged: None,
            };
        }
        tokio::time::sleep(pause).await;
    }
}
