//! Assembles the application from its configuration: stores, services, the router, the
//! ingest and the background loops; runs it until shutdown, and stops every part in
//! order within the grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use onair_infra::{MediaStore, MemoryViewerCounter, RedisPool, RedisViewerCounter, ViewerCounter};
use onair_media::{IngestServer, Publishers};
use onair_store::Store;
use tokio::sync::watch;

use crate::accounts::{Accounts, PasswordHashing};
use crate::admin::Admin;
use crate::archives::Archives;
use crate::avatars::Avatars;
use crate::caches::Caches;
use crate::chat::{ChangeAnnouncer, Chat, ChatStores};
use crate::clips::{ClipSources, Clips};
use crate::config::{Config, ConfigError};
use crate::identity::AccessTokens;
use crate::jobs::JobRunner;
use crate::media::{Broadcasts, Media, MediaAccess};
use crate::notifications::{Notifications, NotificationsError, NotifyStores};
use crate::observability::Readiness;
use crate::pagination::{Cursors, UserLists};
use crate::payments::Payments;
use crate::processing::{Processing, ProcessingStores, remove_expired_archives, work_dir};
use crate::rate_limit::RateLimits;
use crate::read_your_writes::ReadYourWrites;
use crate::roles::Role;
use crate::routes::{AppState, router};
use crate::shutdown::signalled;
use crate::streams::{IngestUrls, StreamKeys, Streams};
use crate::users::Users;
use crate::viewers::Viewers;
use crate::{media, observability};

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
    #[error(transparent)]
    BindIngest(#[from] onair_media::BindError),
    #[error(transparent)]
    Notifications(#[from] NotificationsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A configured, bound, migrated server, ready to run.
pub struct Application {
    listener: tokio::net::TcpListener,
    router: Router,
    /// `/metrics` on a listener of its own (`http.metrics_bind`).
    metrics: Option<(tokio::net::TcpListener, Router)>,
    store: Arc<dyn Store>,
    ingest: Option<IngestServer>,
    caches: Arc<Caches>,
    viewers: Arc<Viewers>,
    chat: Arc<Chat>,
    jobs: Option<Arc<JobRunner>>,
    config: Config,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let (secret, store) = open(&config).await?;
        let files = MediaStore::open_with(
            config.media.object_store_url.as_deref(),
            &config.media_root(),
            &config.media.s3(config.breaker.settings()),
        )?;
        let redis = connect_redis(&config).await?;
        let readiness = Arc::new(Readiness {
            store: store.clone(),
            redis: redis.as_ref().map(|(_, pool)| pool.clone()),
        });
        let access_tokens = Arc::new(AccessTokens::new(
            &secret,
            Duration::from_secs(config.auth.access_token_ttl_secs),
        ));
        let cursors = Arc::new(Cursors::new(&secret));
        let lists = || UserLists::new(Arc::clone(&cursors), store.clone());
        let notifications = notifications(
            &config,
            &secret,
            &store,
            &access_tokens,
            &cursors,
            redis.clone(),
        )?;
        let jobs = (config.jobs.enabled && config.runs(Role::Worker))
            .then(|| job_runner(&config, &store, &notifications, &files));
        let wake_jobs = notifications.waker();
        let publishers = Publishers::default();
        let chat_stores = ChatStores {
            chat: store.clone(),
            users: store.clone(),
            streams: store.clone(),
        };
        let chat = Arc::new(Chat::new(
            &config.chat,
            chat_stores,
            Arc::clone(&access_tokens),
            Arc::clone(&cursors),
            redis.clone(),
        )?);
        let announcer = Arc::new(ChangeAnnouncer(Arc::clone(&chat)));
        let caches = Caches::new(&config.cache, redis.clone(), announcer).await?;
        let broadcasts = Arc::new(Broadcasts::new(
            store.clone(),
            store.clone(),
            Arc::clone(&wake_jobs),
            (
                config.media.storage_quota_bytes,
                Duration::from_secs(config.media.ingest_lease_secs),
            ),
            Arc::clone(&caches),
        ));
        let rate_limits = Arc::new(RateLimits::new(
            &config.rate_limit,
            config.trusted_proxies()?,
            Arc::clone(&access_tokens),
            redis.as_ref().map(|(_, pool)| pool),
        ));
        let replicas = &config.database;
        let read_your_writes = Arc::new(ReadYourWrites::new(
            (!replicas.replica_urls.is_empty()).then(|| replicas.replica_policy()),
            Arc::clone(&access_tokens),
            redis.as_ref().map(|(_, pool)| pool),
        ));
        let viewer_counter: Arc<dyn ViewerCounter> = match &redis {
            Some((_, pool)) => Arc::new(RedisViewerCounter::new(pool.clone(), "onair:")),
            None => Arc::new(MemoryViewerCounter::default()),
        };
        let viewers = Arc::new(Viewers::new(
            store.clone(),
            viewer_counter,
            &secret,
            &config.viewers,
        ));
        let avatars = Arc::new(Avatars::new(
            store.clone(),
            files.clone(),
            config.media.ffmpeg_path.clone(),
            Arc::clone(&caches),
        ));
        let media_access = Arc::new(MediaAccess::new(store.clone(), store.clone(), &secret));
        let streams = Arc::new(Streams::new(
            store.clone(),
            store.clone(),
            StreamKeys::new(&secret),
            IngestUrls {
                rtmp: config.media.public_rtmp_url.clone(),
                srt: config
                    .media
                    .srt_enabled
                    .then(|| config.media.public_srt_url.clone()),
            },
            Arc::clone(&wake_jobs),
            lists(),
            (publishers.clone(), Arc::clone(&caches)),
        ));
        let state = AppState {
            accounts: Arc::new(Accounts::new(
                store.clone(),
                store.clone(),
                Arc::clone(&access_tokens),
                Duration::from_secs(config.auth.refresh_token_ttl_secs),
                PasswordHashing::new(config.auth.max_concurrent_hashes),
                Duration::from_secs(config.auth.session_max_age_secs),
                Arc::clone(&rate_limits),
            )),
            users: Arc::new(Users::new(
                store.clone(),
                store.clone(),
                Arc::clone(&avatars),
                lists(),
                Arc::clone(&caches),
            )),
            avatars,
            admin: Arc::new(Admin::new(store.clone(), Some(Arc::clone(&streams)))),
            streams,
            archives: Arc::new(Archives::new(
                store.clone(),
                lists(),
                Arc::clone(&media_access),
            )),
            clips: Arc::new(Clips::new(
                ClipSources {
                    clips: store.clone(),
                    archives: store.clone(),
                    streams: store.clone(),
                },
                files.clone(),
                lists(),
                wake_jobs,
            )),
            viewers: Arc::clone(&viewers),
            chat: Arc::clone(&chat),
            notifications,
            payments: Arc::new(Payments::new(
                &config.payments,
                config.breaker.settings(),
                store.clone(),
                (Arc::clone(&chat), Arc::clone(&cursors)),
            )),
            media: Arc::new(Media::new(
                Arc::clone(&broadcasts),
                files.clone(),
                media_access,
                config.media.hook_secret.clone(),
            )),
            access_tokens,
            rate_limits,
            cursors,
            read_your_writes,
            store: Arc::clone(&store),
            readiness: readiness.clone(),
        };
        let router = router(state, &config.http, &config.roles);
        let listener = bind(config.http.bind).await?;
        let metrics = match config.http.metrics_bind {
            Some(addr) => Some((bind(addr).await?, observability::metrics_only(readiness))),
            None => None,
        };
        let ingest = if config.media.rtmp_enabled && config.runs(Role::Ingest) {
            warn_if_missing(&config.media.ffmpeg_path);
            let ingest = IngestServer::bind(
                config.media.ingest(files, config.media_root()),
                broadcasts,
                publishers,
            )
            .await?;
            Some(ingest)
        } else {
            None
        };
        Ok(Self {
            listener,
            router,
            metrics,
            store,
            ingest,
            caches,
            viewers,
            chat,
            jobs,
            config,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The metrics listener's address, when `/metrics` has one of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        let (listener, _) = self.metrics.as_ref()?;
        Some(
            listener
                .local_addr()
                .expect("a bound listener has an address"),
        )
    }

    /// The whole router, e.g. for a test to list the routes it answers.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The RTMP ingest address, when the built-in ingest is enabled.
    pub fn rtmp_addr(&self) -> Option<SocketAddr> {
        self.ingest.as_ref().map(IngestServer::rtmp_addr)
    }

    /// The SRT ingest address, when the built-in ingest and SRT are enabled.
    pub fn srt_addr(&self) -> Option<SocketAddr> {
        self.ingest.as_ref().and_then(IngestServer::srt_addr)
    }

    /// Serves until `shutdown` resolves. Then, within the grace period: stops accepting,
    /// lets in-flight requests finish, closes chat sockets with 1001 (going away) so their
    /// clients reconnect elsewhere, ends ingests, lets running jobs finish, stops the
    /// background loops after their last flush (viewer counts are persisted), and closes
    /// the database pools.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let roles: Vec<String> = self.config.roles.iter().map(Role::to_string).collect();
        let roles = roles.join(",");
        let (addr, metrics, backend) =
            (self.local_addr(), self.metrics_addr(), self.store.backend());
        if self.config.runs(Role::Api) {
            let url = crate::web::open_url(addr);
            tracing::info!(%addr, ?metrics, ?backend, roles, "listening: open {url} in a browser");
        } else {
            tracing::info!(%addr, ?metrics, ?backend, roles, "listening");
        }
        let grace = Duration::from_secs(self.config.http.shutdown_grace_secs);
        // Front: what takes new work (HTTP, ingest, job claims). Back: the loops that
        // flush what the front collected, stopped once the front is done.
        let (stop_front, front) = watch::channel(false);
        let (stop_back, back) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_front.send(true);
        });
        let runs = |role| self.config.runs(role);
        // Idempotent: on every node that is not only a chat node.
        let sweeper = (runs(Role::Api) || runs(Role::Ingest) || runs(Role::Worker)).then(|| {
            tokio::spawn(media::end_abandoned_broadcasts(
                (self.store.clone(), Arc::clone(&self.caches)),
                Duration::from_secs(self.config.media.reconnect_grace_secs),
                back.clone(),
            ))
        });
        let retention = runs(Role::Worker)
            .then(|| retention_sweep(&self.config, &self.store, back.clone()))
            .flatten();
        // Heartbeats arrive at API nodes: they flush them.
        let viewer_counts = runs(Role::Api).then(|| {
            tokio::spawn(Arc::clone(&self.viewers).run(self.config.viewers.clone(), back))
        });
        let chat_housekeeping = tokio::spawn(Arc::clone(&self.chat).housekeeping());
        let ingest = self
            .ingest
            .map(|ingest| tokio::spawn(ingest.run_until(stopped(front.clone()))));
        let jobs = self
            .jobs
            .map(|runner| tokio::spawn(runner.run(front.clone())));
        let metrics = self.metrics.map(|(listener, router)| {
            let stop = stopped(front.clone());
            tokio::spawn(crate::serve::serve(listener, router, stop, grace))
        });
        let served = crate::serve::serve(self.listener, self.router, stopped(front), grace).await;
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        self.chat.close_all(grace).await;
        let _ = chat_housekeeping.await;
        for task in ingest.into_iter().chain(jobs) {
            let _ = task.await;
        }
        let _ = stop_back.send(true);
        for task in sweeper.into_iter().chain(viewer_counts).chain(retention) {
            let _ = task.await;
        }
        self.store.close().await;
        served
    }
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, StartupError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })
}

/// Resolves once `signal` turns true.
async fn stopped(mut signal: watch::Receiver<bool>) {
    signalled(&mut signal).await;
}

/// What every process role starts with: valid settings, the root secret, a migrated
/// store, the metrics recorder.
async fn open(config: &Config) -> Result<(Vec<u8>, Arc<dyn Store>), StartupError> {
    config.validate()?;
    config.create_data_dir()?;
    let secret = config.resolve_secret()?;
    let store = onair_store::connect(&config.db()?).await?;
    crate::telemetry::database_system(store.backend());
    if config.database.migrate_on_start {
        store.migrate().await?;
    }
    observability::prometheus();
    Ok((secret, store))
}

/// The shared Redis of scale-out mode (its URL, for subscribers, and a pool).
async fn connect_redis(config: &Config) -> Result<Option<(&str, RedisPool)>, StartupError> {
    match &config.redis.url {
        Some(url) => Ok(Some((
            url.as_str(),
            RedisPool::connect_with(url, config.redis.options()).await?,
        ))),
        None => Ok(None),
    }
}

fn notifications(
    config: &Config,
    secret: &[u8],
    store: &Arc<dyn Store>,
    access_tokens: &Arc<AccessTokens>,
    cursors: &Arc<Cursors>,
    redis: Option<(&str, RedisPool)>,
) -> Result<Arc<Notifications>, NotificationsError> {
    let stores = NotifyStores {
        inbox: store.clone(),
        subscriptions: store.clone(),
        webhooks: store.clone(),
    };
    Notifications::new(
        &config.notify,
        config.breaker.settings(),
        config.jobs.backoff_base(),
        stores,
        (Arc::clone(access_tokens), Arc::clone(cursors)),
        secret,
        redis,
    )
}

/// The job runner of this process: notification jobs and media jobs.
fn job_runner(
    config: &Config,
    store: &Arc<dyn Store>,
    notifications: &Arc<Notifications>,
    files: &MediaStore,
) -> Arc<JobRunner> {
    let mut handlers = notifications.handlers(store);
    let stores = ProcessingStores {
        archives: store.clone(),
        clips: store.clone(),
        jobs: store.clone(),
    };
    let processing = Arc::new(Processing::new(
        &config.processing,
        stores,
        files.clone(),
        (config.media.ffmpeg_path.clone(), work_dir(&config.data_dir)),
        config.jobs.max_attempts,
    ));
    processing.register(&mut handlers);
    Arc::new(JobRunner::new(
        Arc::clone(store),
        handlers,
        config.jobs.runner(),
        notifications.waker(),
    ))
}

/// Deletes archives past `processing.retention_days` until `stop`, where jobs run.
fn retention_sweep(
    config: &Config,
    store: &Arc<dyn Store>,
    stop: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let days = config
        .processing
        .retention_days
        .filter(|_| config.jobs.enabled)?;
    let retention = Duration::from_secs(u64::from(days) * 86_400);
    Some(tokio::spawn(remove_expired_archives(
        store.clone(),
        retention,
        stop,
    )))
}

/// `onair worker`: runs jobs only (no HTTP, no ingest) until `shutdown` resolves.
pub async fn run_worker(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let (secret, store) = open(&config).await?;
    let redis = connect_redis(&config).await?;
    let access_tokens = Arc::new(AccessTokens::new(
        &secret,
        Duration::from_secs(config.auth.access_token_ttl_secs),
    ));
    let cursors = Arc::new(Cursors::new(&secret));
    let notifications = notifications(&config, &secret, &store, &access_tokens, &cursors, redis)?;
    let files = MediaStore::open_with(
        config.media.object_store_url.as_deref(),
        &config.media_root(),
        &config.media.s3(config.breaker.settings()),
    )?;
    let runner = job_runner(&config, &store, &notifications, &files);
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let retention = retention_sweep(&config, &store, stopped.clone());
    tracing::info!(backend = ?store.backend(), concurrency = config.jobs.concurrency, "worker running");
    runner.run(stopped).await;
    if let Some(retention) = retention {
        let _ = retention.await;
    }
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
