//! The application's state and router: one service per domain, each handler given only
//! the service it asks for (axum's `FromRef`), every route in the OpenAPI document.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Request};
use axum::http::HeaderName;
use axum::middleware;
use onair_store::Store;
use tower_http::cors::CorsLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use tracing::field::Empty;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use crate::accounts::Accounts;
use crate::admin::Admin;
use crate::archives::Archives;
use crate::avatars::Avatars;
use crate::chat::Chat;
use crate::clips::Clips;
use crate::config::HttpConfig;
use crate::error::ApiError;
use crate::identity::AccessTokens;
use crate::media::Media;
use crate::notifications::Notifications;
use crate::observability::Readiness;
use crate::pagination::Cursors;
use crate::payments::Payments;
use crate::rate_limit::RateLimits;
use crate::read_your_writes::ReadYourWrites;
use crate::roles::Role;
use crate::streams::Streams;
use crate::users::Users;
use crate::viewers::Viewers;
use crate::{
    accounts, admin, archives, avatars, chat, clips, http_cache, media, notifications,
    observability, openapi, payments, rate_limit, read_your_writes, streams, telemetry, users,
    viewers, web,
};

/// What handlers can reach. Cheap to clone: every service is shared.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub accounts: Arc<Accounts>,
    pub users: Arc<Users>,
    pub avatars: Arc<Avatars>,
    pub streams: Arc<Streams>,
    pub archives: Arc<Archives>,
    pub clips: Arc<Clips>,
    pub viewers: Arc<Viewers>,
    pub chat: Arc<Chat>,
    pub notifications: Arc<Notifications>,
    pub payments: Arc<Payments>,
    pub admin: Arc<Admin>,
    pub media: Arc<Media>,
    pub access_tokens: Arc<AccessTokens>,
    pub rate_limits: Arc<RateLimits>,
    /// Signs the lists' cursors.
    pub cursors: Arc<Cursors>,
    pub read_your_writes: Arc<ReadYourWrites>,
    /// Pool metrics.
    pub store: Arc<dyn Store>,
    pub readiness: Arc<Readiness>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "OnAir", description = "Live streaming: accounts, follows, streams, archives, clips, tips."),
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

/// The router with the routes of this node's roles and every middleware, and the OpenAPI
/// document describing them. Probes and metrics are on every node.
pub fn router(state: AppState, http: &HttpConfig, roles: &[Role]) -> Router {
    let serves_api = roles.contains(&Role::Api);
    let mut api = OpenApiRouter::new();
    if serves_api {
        api = api_routes();
    }
    if roles.contains(&Role::Chat) {
        api = api.merge(chat::sockets());
    }
    let api = api
        // Inside the limits: a refused request reads nothing.
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state.read_your_writes),
            read_your_writes::route,
        ))
        // Only the API: media, pages, docs and probes are never limited, and media sets
        // its own caching.
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state.rate_limits),
            rate_limit::limit,
        ))
        // Outside the limits: a 429 is no-store, a 304 keeps the RateLimit headers.
        .layer(middleware::from_fn(http_cache::cache));
    let api_paths = api
        .get_openapi()
        .paths
        .paths
        .keys()
        .map(|path| format!("/api{path}"))
        .collect();
    let mut routes = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api", api)
        .merge(observability::router(http.metrics_bind.is_none()));
    if serves_api {
        routes = routes
            .merge(media::router())
            .merge(payments::hooks_router())
            .merge(avatars::files_router())
            .merge(clips::files_router());
    }
    let (mut routes, openapi) = routes.split_for_parts();
    if serves_api {
        // The UI's pages and assets (outside the API document), and the document.
        routes = routes
            .merge(web::router())
            .merge(openapi::routes(openapi::complete(openapi, &api_paths)));
    }
    let request_id = HeaderName::from_static("x-request-id");

    routes
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
        .layer(DefaultBodyLimit::max(http.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            Duration::from_secs(http.request_timeout_secs),
            observability::deadline,
        ))
        .layer(middleware::from_fn(observability::track_requests))
        .layer(middleware::from_fn(web::security_headers))
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
                    // The path only: query strings may carry cursors or tokens. The
                    // route, name and status are recorded once routed and answered
                    // (`observability::track_requests`); OpenTelemetry's semantic
                    // conventions name the fields.
                    let span = tracing::info_span!(
                        "request",
                        id,
                        method = %request.method(),
                        path = request.uri().path(),
                        trace_id = Empty,
                        span_id = Empty,
                        otel.name = %request.method(),
                        otel.kind = "server",
                        http.request.method = %request.method(),
                        url.path = request.uri().path(),
                        http.route = Empty,
                    );
                    telemetry::continue_remote(&span, request.headers());
                    telemetry::record_ids(&span);
                    span
                })
                .on_request(())
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// What API nodes serve under `/api`.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(accounts::router())
        .merge(users::router())
        .merge(avatars::router())
        .merge(streams::router())
        .merge(archives::router())
        .merge(clips::router())
        .merge(viewers::router())
        .merge(chat::router())
        .merge(notifications::router())
        .merge(payments::router())
        .merge(admin::router())
}
