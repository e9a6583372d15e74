use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use onair_server::{Application, Config};
use onair_store::DbConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

pub const SECRET: &str = "test-secret-test-secret-test-secret!";

pub struct TestApp {
    pub addr: SocketAddr,
    pub rtmp: Option<SocketAddr>,
    pub srt: Option<SocketAddr>,
    /// The metrics listener, when `http.metrics_bind` was set.
    pub metrics: Option<SocketAddr>,
    pub client: reqwest::Client,
    pub db: DbConfig,
    /// The settings it runs with, for a worker beside it.
    pub config: Config,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _data_dir: tempfile::TempDir,
}

/// A signed-up user and its tokens.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub username: String,
    pub access: String,
    pub refresh: String,
}

/// The shared Redis of the tests that need one. Such a test is ignored unless the
/// variable was set when it was built (`#[redis]` in `backend_tests!`).
pub fn redis_url() -> String {
    std::env::var("ONAIR_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect("ONAIR_TEST_REDIS_URL must be set to run this test")
}

impl TestApp {
    /// A server on ephemeral ports with the default settings, on the database `db`.
    pub async fn spawn(db: DbConfig) -> Self {
        Self::spawn_configured(db, |_| {}).await
    }

    /// A server on ephemeral ports with settings changed by `change`.
    pub async fn spawn_configured(db: DbConfig, change: impl FnOnce(&mut Config)) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: data_dir.path().to_owned(),
            ..Config::default()
        };
        config.http.bind = "127.0.0.1:0".parse().unwrap();
        config.database.url = Some(db.url.clone());
        config.database.max_connections = db.max_connections;
        config.database.min_connections = 0;
        config.auth.secret_key = Some(SECRET.into());
        config.media.rtmp_bind = "127.0.0.1:0".parse().unwrap();
        config.media.srt_bind = "127.0.0.1:0".parse().unwrap();
        // Tests fire many requests from 127.0.0.1 at once; `rate_limits` turns them on.
        config.rate_limit.enabled = false;
        // The suite runs tests side by side on two cores: a niced media job would wait
        // behind them (priorities are the benchmark's business, not the tests').
        config.processing.nice = 0;
        // Tests share one Redis: each test's nodes (one database) keep their caches apart.
        config.cache.key_prefix = format!("test:{:x}:", {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::hash::DefaultHasher::new();
            db.url.hash(&mut hasher);
            hasher.finish()
        });
        change(&mut config);
        let app = Application::build(config.clone())
            .await
            .expect("server starts");
        let addr = app.local_addr();
        let (rtmp, srt) = (app.rtmp_addr(), app.srt_addr());
        let metrics = app.metrics_addr();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        Self {
            addr,
            rtmp,
            srt,
            metrics,
            client: reqwest::Client::new(),
            db,
            config,
            shutdown: Some(tx),
            server: Some(server),
            _data_dir: data_dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        read(response).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request(Method::GET, path, None, None).await
    }

    pub async fn get_as(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, token, Some(body)).await
    }

    pub async fn signup(&self, username: &str) -> User {
        let (status, body) = self
            .post(
                "/api/auth/signup",
                None,
                json!({"username": username, "email": format!("{username}@example.com"), "password": "correct horse battery"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        User {
            id: body["user"]["id"].as_str().unwrap().to_owned(),
            username: body["user"]["username"].as_str().unwrap().to_owned(),
            access: body["access_token"].as_str().unwrap().to_owned(),
            refresh: body["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    /// Follows every page of a list, asserting the envelope, and returns all items.
    pub async fn collect_pages(&self, path: &str, limit: u32) -> (Vec<Value>, usize) {
        let mut items = Vec::new();
        let mut pages = 0;
        let mut cursor: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let mut url = format!("{path}{sep}limit={limit}");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let (status, body) = self.get(&url).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            pages += 1;
            let data = body["data"].as_array().expect("data array");
            assert!(data.len() <= limit as usize);
            items.extend(data.iter().cloned());
            let has_more = body["pagination"]["has_more"].as_bool().unwrap();
            cursor = body["pagination"]["next_cursor"]
                .as_str()
                .map(str::to_owned);
            assert_eq!(has_more, cursor.is_some());
            if !has_more {
                return (items, pages);
            }
        }
    }

    /// An `onair worker` beside this server (same database and media), running jobs
    /// until dropped.
    pub fn start_worker(&self) -> Worker {
        let mut config = self.config.clone();
        config.jobs.enabled = true;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            onair_server::run_worker(config, shutdown)
                .await
                .expect("worker runs");
        });
        Worker(Some(stop))
    }

    /// Tells the server to stop (gracefully), without waiting for it.
    pub fn stop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn shutdown(mut self) {
        self.stop();
        self.server.take().unwrap().await.unwrap().unwrap();
    }
}

/// A worker started by [`TestApp::start_worker`]; stops when dropped.
pub struct Worker(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(stop) = self.0.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// Sends `request`: status, headers, body.
pub async fn send(
    request: reqwest::RequestBuilder,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let response = request.send().await.expect("request sent");
    let headers = response.headers().clone();
    let (status, body) = read(response).await;
    (status, headers, body)
}

/// The value of the header `name`, which must be there.
#[track_caller]
pub fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {headers:?}"))
        .to_str()
        .unwrap()
}

/// Asserts the JSON error envelope with a status and a stable code.
#[track_caller]
pub fn assert_error((status, body): &(StatusCode, Value), expected_status: u16, code: &str) {
    assert_eq!(status.as_u16(), expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

/// An HS256 JWT signed with the key the server derives from `secret`.
pub fn jwt(secret: &str, header: Value, claims: Value) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(b"onair/access-token");
    let key = mac.finalize().into_bytes();
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

/// A local HTTP server standing in for a third party we call (a push service, a webhook
/// receiver): it answers each request with the status `answer(path, n)` gives for the
/// n-th request (from 0) to that path, and records every request.
pub struct Receiver {
    pub addr: SocketAddr,
    requests: std::sync::Arc<std::sync::Mutex<Vec<Recorded>>>,
}

impl Receiver {
    pub async fn start(answer: fn(&str, usize) -> u16) -> Self {
        Self::start_slow(answer, |_, _| Duration::ZERO).await
    }

    /// Also waits `delay(path, n)` before answering the `n`th request on `path`.
    pub async fn start_slow(
        answer: fn(&str, usize) -> u16,
        delay: fn(&str, usize) -> Duration,
    ) -> Self {
        use axum::extract::{Request, State};
        type Log = std::sync::Arc<std::sync::Mutex<Vec<Recorded>>>;
        let requests: Log = Default::default();
        let app = axum::Router::new()
            .fallback(move |State(log): State<Log>, request: Request| async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20).await.unwrap().to_vec();
                let path = parts.uri.path().to_owned();
                let (status, wait) = {
                    let mut log = log.lock().unwrap();
                    let n = log.iter().filter(|r| r.path == path).count();
                    let answered = (answer(&path, n), delay(&path, n));
                    log.push(Recorded {
                        path,
                        headers: parts.headers,
                        body,
                    });
                    answered
                };
                tokio::time::sleep(wait).await;
                axum::http::StatusCode::from_u16(status).unwrap()
            })
            .with_state(std::sync::Arc::clone(&requests));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, requests }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self, path: &str) -> Vec<Recorded> {
        let log = self.requests.lock().unwrap();
        log.iter().filter(|r| r.path == path).cloned().collect()
    }

    /// Waits until `path` got at least `n` requests, and returns them.
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<Recorded> {
        eventually(&format!("{n} requests to {path}"), || async {
            let got = self.requests(path);
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

/// How long a test waits for something the server owes (a frame, a state, a process
/// exit) before failing. Only a failure deadline: a wait that succeeds ends as soon as
/// its condition holds, so it can be generous enough for a busy machine.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `check` every 50 ms until it returns something ([`DEADLINE`] at most).
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
