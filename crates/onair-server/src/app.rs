//! Assembles the HTTP application: routes, middleware, state; and runs it until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::HeaderName;
use axum::middleware;
use onair_infra::{MediaStore, MemoryViewerCounter, RedisPool, RedisViewerCounter, ViewerCounter};
use onair_media::IngestServer;
use onair_store::Store;
use tower_http::cors::CorsLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use crate::auth::AccessTokens;
use crate::chat::Chat;
use crate::config::{Config, ConfigError};
use crate::error::ApiError;
use crate::jobs::JobRunner;
use crate::media::Broadcasts;
use crate::notifications::Notifications;
use crate::pagination::Cursors;
use crate::state::AppState;
use crate::streams::StreamKeys;
use crate::viewers::{ViewerIntervals, Viewers};
use crate::{archives, auth, chat, media, notifications, observability, streams, users, viewers};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] onair_store::StoreError),
    #[error(transparent)]
    MediaStore(#[from] onair_infra::MediaStoreError),
    #[error("cannot connect to Redis: {0}")]
    Redis(#[from] onair_infra::InfraError),
    #[error("cannot listen for RTMP on {addr}: {source}")]
    BindRtmp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Vapid(#[from] crate::notifications::VapidKeyError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

#[derive(OpenApi)]
#[openapi(
    info(title = "OnAir", description = "Live streaming: accounts, follows, streams, archives."),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The router with every route and middleware, and the OpenAPI document describing it.
pub fn router(state: AppState, config: &Config) -> Router {
    let api = OpenApiRouter::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(streams::router())
        .merge(archives::router())
        .merge(viewers::router())
        .merge(chat::router())
        .merge(notifications::router());
    let (routes, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api", api)
        .merge(observability::router())
        .merge(media::router())
        .split_for_parts();
    let document = Arc::new(openapi);
    let request_id = HeaderName::from_static("x-request-id");

    routes
        .route(
            "/api/openapi.json",
            axum::routing::get(move || {
                let document = Arc::clone(&document);
                async move { axum::Json(document.as_ref().clone()) }
            }),
        )
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            Duration::from_secs(config.http_request_timeout_secs),
            observability::deadline,
        ))
        .layer(middleware::from_fn(observability::track_requests))
        .layer(CorsLayer::permissive())
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let id = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    // The path only: query strings may carry cursors or tokens.
                    tracing::info_span!("request", id, method = %request.method(), path = request.uri().path())
                })
                .on_request(())
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// A configured, bound, migrated server, ready to run.
pub struct Application {
    listener: tokio::net::TcpListener,
    router: Router,
    store: Arc<dyn Store>,
    ingest: Option<IngestServer>,
    reconnect_grace: Duration,
    viewers: Arc<Viewers>,
    viewer_intervals: ViewerIntervals,
    chat: Arc<Chat>,
    jobs: Option<Arc<JobRunner>>,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let (secret, store) = open(&config).await?;
        let media = MediaStore::open(config.object_store_url.as_deref(), &config.media_root())?;
        let redis = connect_redis(&config).await?;
        let notifications = Notifications::new(config.notify(), &secret, redis.clone())?;
        let jobs = config
            .jobs_enabled
            .then(|| job_runner(&config, &store, &notifications));
        let broadcasts = Arc::new(Broadcasts {
            store: Arc::clone(&store),
            jobs: notifications.waker(),
        });
        let viewer_counter: Arc<dyn ViewerCounter> = match &redis {
            Some((_, pool)) => Arc::new(RedisViewerCounter::new(pool.clone(), "onair:")),
            None => Arc::new(MemoryViewerCounter::default()),
        };
        let viewers = Arc::new(Viewers::new(Arc::clone(&store), viewer_counter, &secret));
        let chat = Arc::new(Chat::new(config.chat(), redis)?);
        let state = AppState {
            store: Arc::clone(&store),
            access_tokens: Arc::new(AccessTokens::new(
                &secret,
                Duration::from_secs(config.access_token_ttl_secs),
            )),
            stream_keys: Arc::new(StreamKeys::new(&secret)),
            refresh_token_ttl: Duration::from_secs(config.refresh_token_ttl_secs),
            public_rtmp_url: config.public_rtmp_url.as_str().into(),
            media: media.clone(),
            broadcasts: Arc::clone(&broadcasts),
            viewers: Arc::clone(&viewers),
            chat: Arc::clone(&chat),
            notifications,
            cursors: Arc::new(Cursors::new(&secret)),
            media_hook_secret: config.media_hook_secret.as_deref().map(Arc::from),
        };
        let router = router(state, &config);
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| StartupError::Bind {
                addr: config.bind,
                source,
            })?;
        let ingest = if config.rtmp_enabled {
            warn_if_missing(&config.ffmpeg_path);
            let ingest = IngestServer::bind(config.ingest(media), broadcasts)
                .await
                .map_err(|source| StartupError::BindRtmp {
                    addr: config.rtmp_bind,
                    source,
                })?;
            Some(ingest)
        } else {
            None
        };
        Ok(Self {
            listener,
            router,
            store,
            ingest,
            reconnect_grace: Duration::from_secs(config.reconnect_grace_secs),
            viewers,
            chat,
            jobs,
            viewer_intervals: ViewerIntervals {
                flush: Duration::from_millis(config.viewer_flush_ms),
                persist: Duration::from_millis(config.viewer_persist_ms),
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The RTMP ingest address, when the built-in ingest is enabled.
    pub fn rtmp_addr(&self) -> Option<SocketAddr> {
        self.ingest.as_ref().map(IngestServer::local_addr)
    }

    /// Serves until `shutdown` resolves, lets in-flight requests finish, then closes the
    /// database pools.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = %self.local_addr(), backend = ?self.store.backend(), "listening");
        // One shutdown signal, fanned out to the HTTP server and the ingest.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let sweeper = tokio::spawn(media::end_abandoned_broadcasts(
            Arc::clone(&self.store),
            self.reconnect_grace,
        ));
        let viewer_counts = tokio::spawn(self.viewers.run(self.viewer_intervals));
        let chat_housekeeping = tokio::spawn(self.chat.housekeeping());
        let ingest = self
            .ingest
            .map(|ingest| tokio::spawn(ingest.run_until(until_stopped(stopped.clone()))));
        let jobs = self
            .jobs
            .map(|runner| tokio::spawn(runner.run(stopped.clone())));
        let served = crate::serve::serve(self.listener, self.router, until_stopped(stopped)).await;
        if let Some(ingest) = ingest {
            let _ = ingest.await;
        }
        if let Some(jobs) = jobs {
            let _ = jobs.await;
        }
        sweeper.abort();
        viewer_counts.abort();
        chat_housekeeping.abort();
        self.store.close().await;
        served
    }
}

/// What every process role starts with: valid settings, the root secret, a migrated
/// store, the metrics recorder.
async fn open(config: &Config) -> Result<(Vec<u8>, Arc<dyn Store>), StartupError> {
    config.validate()?;
    let secret = config.resolve_secret()?;
    let store = onair_store::connect(&config.db()?).await?;
    if config.migrate_on_start {
        store.migrate().await?;
    }
    observability::prometheus();
    Ok((secret, store))
}

/// The shared Redis of scale-out mode (its URL, for subscribers, and a pool).
async fn connect_redis(config: &Config) -> Result<Option<(&str, RedisPool)>, StartupError> {
    match &config.redis_url {
        Some(url) => Ok(Some((
            url.as_str(),
            RedisPool::connect(url, config.redis_pool_size as usize).await?,
        ))),
        None => Ok(None),
    }
}

fn job_runner(
    config: &Config,
    store: &Arc<dyn Store>,
    notifications: &Arc<Notifications>,
) -> Arc<JobRunner> {
    Arc::new(JobRunner::new(
        Arc::clone(store),
        notifications.handlers(store),
        config.jobs(),
        notifications.waker(),
    ))
}

/// `onair worker`: runs jobs only (no HTTP, no ingest) until `shutdown` resolves.
pub async fn run_worker(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let (secret, store) = open(&config).await?;
    let redis = connect_redis(&config).await?;
    let notifications = Notifications::new(config.notify(), &secret, redis)?;
    let runner = job_runner(&config, &store, &notifications);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    tracing::info!(backend = ?store.backend(), concurrency = config.jobs_concurrency, "worker running");
    runner.run(stopped).await;
    store.close().await;
    Ok(())
}

/// The platform runs without ffmpeg, but every publish would be refused: say so at start.
fn warn_if_missing(ffmpeg: &std::path::Path) {
    let runs = std::process::Command::new(ffmpeg)
        .arg("-version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !runs {
        tracing::warn!(
            ffmpeg = %ffmpeg.display(),
            "ffmpeg not found: RTMP publishes will be refused until it is installed \
             (bash scripts/setup, or apt-get install ffmpeg)"
        );
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
