//! A Lambda Runtime API on loopback and one function process behind it, as
//! Lambda runs a `provided.al2023` function: the built `bootstrap` started
//! with `AWS_LAMBDA_RUNTIME_API` and the variables Lambda sets, asking
//! `GET /2018-06-01/runtime/invocation/next` for one event at a time and
//! posting its answer to `.../{request id}/response` or `.../error`.

use std::collections::HashMap;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use api::local::{Received, Reply, reply, serve};
use hyper::StatusCode;
use hyper::header::{HeaderName, HeaderValue};
use tokio::sync::{mpsc, oneshot};

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const INVOCATION: &str = "/2018-06-01/runtime/invocation/";
const INIT_ERROR: &str = "/2018-06-01/runtime/init/error";

/// What the function posted for one invocation.
#[derive(Debug)]
pub enum Answer {
    Response(Vec<u8>),
    /// `.../error`: the handler returned an error (or panicked).
    Error(Vec<u8>),
}

/// One invocation handed out by `/next`.
struct Pending {
    id: String,
    payload: Vec<u8>,
}

struct State {
    work: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    answers: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    first_next: Mutex<Option<Instant>>,
    init_error: Mutex<Option<String>>,
    function_arn: String,
    timeout: Duration,
}

/// A started function: its process and the Runtime API it polls.
pub struct Function {
    pub name: String,
    child: Child,
    work: mpsc::UnboundedSender<Pending>,
    state: Arc<State>,
    server: tokio::task::JoinHandle<Result<(), String>>,
    /// When the process was started.
    pub started: Instant,
    invocations: AtomicU64,
    /// The function's log (its stdout and stderr).
    pub log: std::path::PathBuf,
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.server.abort();
    }
}

impl Function {
    /// Starts `bootstrap` with `env` (the template's variables and the
    /// rehearsal's credentials) and the variables Lambda itself sets; each
    /// invocation's deadline is `timeout` from when `/next` hands it out.
    pub async fn start(
        name: &str,
        bootstrap: &Path,
        env: &[(String, String)],
        memory_mb: u64,
        timeout: Duration,
        log: std::path::PathBuf,
    ) -> Result<Function, String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        drop(listener);
        let (work, queue) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            work: tokio::sync::Mutex::new(queue),
            answers: Mutex::new(HashMap::new()),
            first_next: Mutex::new(None),
            init_error: Mutex::new(None),
            function_arn: format!("arn:aws:lambda:eu-west-1:123456789012:function:{name}"),
            timeout,
        });
        let served = Arc::clone(&state);
        let server = tokio::spawn(serve(
            SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            move |req| runtime_api(Arc::clone(&served), req),
        ));
        // The listener is bound once `serve` has run its first step.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let dir = bootstrap.parent().unwrap_or(Path::new("."));
        let started = Instant::now();
        let child = Command::new(bootstrap)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb.to_string())
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2026/11/27/[$LATEST]rehearsal",
            )
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
            .env("_HANDLER", "bootstrap")
            .env("LAMBDA_TASK_ROOT", dir)
            .env("LAMBDA_RUNTIME_DIR", dir)
            .env("TZ", ":UTC")
            .env("LANG", "en_US.UTF-8")
            .env("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bootstrap.display()))?;
        Ok(Function {
            name: name.to_owned(),
            child,
            work,
            state,
            server,
            started,
            invocations: AtomicU64::new(0),
            log,
        })
    }

    /// Invocations handed to the function so far.
    pub fn invocations(&self) -> u64 {
        self.invocations.load(Ordering::Relaxed)
    }

    /// When the process first asked for work, if it has.
    pub fn first_next(&self) -> Option<Instant> {
        *self
            .state
            .first_next
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Hands `payload` to the function and waits for its answer (up to the
    /// deadline and a little more). `Err` if the process died, reported an
    /// init error, or never answered.
    pub async fn invoke(&mut self, payload: &serde_json::Value) -> Result<Answer, String> {
        let n = self.invocations.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:08x}-0000-4000-8000-{:012x}", n, n);
        let (tx, rx) = oneshot::channel();
        self.state
            .answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), tx);
        let payload = serde_json::to_vec(payload).map_err(|e| e.to_string())?;
        self.work
            .send(Pending { id, payload })
            .map_err(|_| "the runtime API is gone".to_owned())?;
        let wait = self.state.timeout + Duration::from_secs(3);
        let mut rx = rx;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                answer = &mut rx => return answer.map_err(|_| "no answer".to_owned()),
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            if let Some(error) = self
                .state
                .init_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
            {
                return Err(format!("{}: init error: {error}", self.name));
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("{}: the process exited ({status})", self.name));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("{}: no answer within {wait:?}", self.name));
            }
        }
    }
}

fn header(reply: &mut Reply, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        reply
            .headers_mut()
            .insert(HeaderName::from_static(name), value);
    }
}

async fn runtime_api(state: Arc<State>, req: Received) -> Reply {
    let path = req.path_and_query.as_str();
    if req.method == "GET" && path == NEXT {
        state
            .first_next
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(Instant::now);
        let Some(next) = state.work.lock().await.recv().await else {
            return reply(StatusCode::GONE, "");
        };
        let deadline = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            + state.timeout;
        let mut answer = reply(StatusCode::OK, next.payload);
        header(&mut answer, "lambda-runtime-aws-request-id", &next.id);
        header(
            &mut answer,
            "lambda-runtime-deadline-ms",
            &deadline.as_millis().to_string(),
        );
        header(
            &mut answer,
            "lambda-runtime-invoked-function-arn",
            &state.function_arn,
        );
        header(
            &mut answer,
            "lambda-runtime-trace-id",
            "Root=1-6747a6d1-1f2e3d4c5b6a79880a1b2c3d;Parent=53995c3f42cd8ad8;Sampled=0",
        );
        header(&mut answer, "content-type", "application/json");
        return answer;
    }
    if req.method == "POST" && path == INIT_ERROR {
        *state.init_error.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(String::from_utf8_lossy(&req.body).into_owned());
        return reply(StatusCode::ACCEPTED, "{}");
    }
    if req.method == "POST"
        && let Some(rest) = path.strip_prefix(INVOCATION)
        && let Some((id, kind)) = rest.split_once('/')
    {
        let answer = match kind {
            "response" => Answer::Response(req.body.to_vec()),
            "error" => Answer::Error(req.body.to_vec()),
            _ => return reply(StatusCode::NOT_FOUND, ""),
        };
        let waiting = state
            .answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        return match waiting {
            Some(tx) => {
                let _ = tx.send(answer);
                reply(StatusCode::ACCEPTED, "{}")
            }
            // Lambda answers an unknown or already answered id with 400.
            None => reply(
                StatusCode::BAD_REQUEST,
                "{\"errorType\":\"InvalidRequestID\"}",
            ),
        };
    }
    reply(StatusCode::NOT_FOUND, "")
}
