//! Assembles the HTTP application: routes, middleware, state; and runs it until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::HeaderName;
use axum::middleware;
use onair_store::Store;
use tower_http::cors::CorsLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use crate::auth::AccessTokens;
use crate::config::{Config, ConfigError};
use crate::error::ApiError;
use crate::state::AppState;
use crate::streams::StreamKeys;
use crate::{archives, auth, observability, streams, users};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] onair_store::StoreError),
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
        .merge(archives::router());
    let (routes, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api", api)
        .merge(observability::router())
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
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        config.validate()?;
        let secret = config.resolve_secret()?;
        let store = onair_store::connect(&config.db()?).await?;
        if config.migrate_on_start {
            store.migrate().await?;
        }
        observability::prometheus();
        let state = AppState {
            store: Arc::clone(&store),
            access_tokens: Arc::new(AccessTokens::new(
                &secret,
                Duration::from_secs(config.access_token_ttl_secs),
            )),
            stream_keys: Arc::new(StreamKeys::new(&secret)),
            refresh_token_ttl: Duration::from_secs(config.refresh_token_ttl_secs),
            public_rtmp_url: config.public_rtmp_url.as_str().into(),
        };
        let router = router(state, &config);
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| StartupError::Bind {
                addr: config.bind,
                source,
            })?;
        Ok(Self {
            listener,
            router,
            store,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, lets in-flight requests finish, then closes the
    /// database pools.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = %self.local_addr(), backend = ?self.store.backend(), "listening");
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await;
        self.store.close().await;
        served
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
