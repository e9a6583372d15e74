//! The web UI on the API's port: one HTML page for every client route, content-hashed
//! assets cached for a year, the files of `web/public/` at the site root, each sent
//! brotli- or gzip-compressed when the client accepts it, and the browser security headers
//! every response carries. The built files come from `onair-web` (built from `web/` at
//! compile time, compressed then).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Router;
use axum::extract::{Path, Request};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use onair_web::Asset;

use crate::error::ApiError;

/// Client routes: each answers with the page, which renders the route itself. Like
/// [`ASSETS`], not part of the API document.
pub const PAGES: &[&str] = &[
    "/",
    "/login",
    "/signup",
    "/dashboard",
    "/settings",
    "/c/{channel}",
    "/embed/{channel}",
    "/popout/{channel}",
    "/overlay/{channel}",
    "/videos/{archive}",
    "/clips/{clip}",
];

/// Where the built scripts, styles and images are served.
pub const ASSETS: &str = "/assets/{file}";

/// Scripts, styles and media from this origin only; no inline scripts. hls.js feeds the
/// video element through blob: URLs (MediaSource) and may run a blob: worker. Avatars
/// may live elsewhere (https). The tip form's Stripe.js comes from js.stripe.com and
/// talks to api.stripe.com, its card fields and 3-D Secure in frames of js.stripe.com and
/// hooks.stripe.com (Stripe's documented CSP).
macro_rules! csp {
    ($frame_ancestors:literal) => {
        concat!(
            "default-src 'self'; script-src 'self' https://js.stripe.com; style-src 'self'; ",
            "img-src 'self' https: data:; media-src 'self' blob:; worker-src 'self' blob:; ",
            "connect-src 'self' https://api.stripe.com; ",
            "frame-src https://js.stripe.com https://hooks.stripe.com; ",
            "object-src 'none'; base-uri 'none'; form-action 'self'; ",
            "frame-ancestors ",
            $frame_ancestors
        )
    };
}

/// Served when the build machine had no npm: the API works, the UI says how to get it.
const UNBUILT: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
    <title>OnAir</title></head><body><main><h1>OnAir</h1><p>The web UI was not built: \
    install Node.js 20 or newer with npm, then build OnAir again. The API is at \
    <a href=\"/api/openapi.json\">/api/openapi.json</a>.</p></main></body></html>";

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let router = PAGES
        .iter()
        .fold(Router::new(), |router, path| router.route(path, get(page)))
        .route(ASSETS, get(asset));
    onair_web::root_files().iter().fold(router, |router, file| {
        // Under a fixed name (a service worker must keep its URL): always revalidated.
        router.route(
            file.path,
            get(move |headers: HeaderMap| async move { send(file, "no-cache", &headers) }),
        )
    })
}

async fn page(headers: HeaderMap) -> Response {
    match onair_web::index_html() {
        // Always revalidated, so a new build's asset names are picked up at once.
        Some(index) => send(index, "no-cache", &headers),
        None => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            UNBUILT,
        )
            .into_response(),
    }
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let asset = onair_web::asset(&format!("/assets/{file}")).ok_or(ApiError::RouteNotFound)?;
    // The name changes with the content, so a copy never goes stale.
    Ok(send(asset, "public, max-age=31536000, immutable", &headers))
}

/// `file` in the smallest encoding the request accepts (brotli, gzip, or as it is).
fn send(file: &'static Asset, cache_control: &'static str, request: &HeaderMap) -> Response {
    let (body, encoding) = match (file.br, file.gzip) {
        (Some(br), _) if accepts(request, "br") => (br, Some("br")),
        (_, Some(gzip)) if accepts(request, "gzip") => (gzip, Some("gzip")),
        _ => (file.body, None),
    };
    let mut response = (
        [
            (header::CONTENT_TYPE, file.content_type),
            (header::CACHE_CONTROL, cache_control),
        ],
        body,
    )
        .into_response();
    let headers = response.headers_mut();
    if let Some(encoding) = encoding {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    if file.br.is_some() || file.gzip.is_some() {
        // Caches must keep one copy per encoding.
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}

/// Whether `Accept-Encoding` allows `coding`: named or `*`, with a quality above 0.
fn accepts(request: &HeaderMap, coding: &str) -> bool {
    let mut named = None;
    let mut any = None;
    let items = request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    for item in items {
        let mut parts = item.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let quality = parts
            .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .map_or(1.0, |q| q.parse::<f32>().unwrap_or(0.0));
        if name.eq_ignore_ascii_case(coding) {
            named = Some(quality);
        } else if name == "*" {
            any = Some(quality);
        }
    }
    named.or(any).is_some_and(|q| q > 0.0)
}

/// Adds the browser security headers to every response. Only `/embed/…` may be framed
/// (by any site: that is what it is for).
pub async fn security_headers(request: Request, next: Next) -> Response {
    let embeddable = request.uri().path().starts_with("/embed/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    let csp = if embeddable {
        csp!("*")
    } else {
        csp!("'none'")
    };
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    if !embeddable {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

/// The address to print for people to open: a wildcard bind is reachable on loopback.
pub fn open_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/", SocketAddr::new(ip, addr.port()))
}
