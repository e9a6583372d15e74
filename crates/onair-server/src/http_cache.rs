//! HTTP caching of the API's reads (review M5), safe behind a CDN left unconfigured.
//!
//! Every `GET` gets a `Cache-Control`: public reads by route family ([`POLICIES`]), the
//! rest — and every request that carries credentials, whose answer may be its caller's
//! alone — `private, no-store`; errors `no-store`. A successful JSON answer gets a strong
//! `ETag` (a hash of its body), and an `If-None-Match` that names it is answered
//! `304 Not Modified` without the body. Other methods, WebSocket upgrades and server-sent
//! events go through untouched.

use axum::body::{Body, HttpBody};
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Bodies above this are sent as they are, without an ETag.
const MAX_BUFFERED: u64 = 1 << 20;

/// What a caller with credentials is answered, and any route not in [`POLICIES`].
const PERSONAL: &str = "private, no-store";
const ERROR: &str = "no-store";
/// The web UI's session cookie (`accounts::web_session`): browsers send it only to
/// `/api/auth`, but a request that carries it anyway is as personal.
const SESSION_COOKIE: &str = "onair_refresh=";

/// The public reads (route templates) and how long shared caches may keep them. Anything
/// a creator or a moderator can take back at once (an archive made private, a clip
/// deleted, a chat mode) is `no-cache`: caches keep it but ask first, which a 304 makes cheap.
const POLICIES: &[(&[&str], &str)] = &[
    (
        &[
            "/api/streams",
            "/api/streams/{id}",
            "/api/users/{id}/streams",
        ],
        "public, max-age=30",
    ),
    (
        &["/api/users/{id}", "/api/users/by-username/{username}"],
        "public, max-age=300",
    ),
    (
        &["/api/users/{id}/followers", "/api/users/{id}/following"],
        "public, max-age=60",
    ),
    (
        &[
            "/api/archives",
            "/api/archives/{id}",
            "/api/users/{id}/archives",
            "/api/clips/{id}",
            "/api/users/{id}/clips",
            "/api/channels/{id}/chat/settings",
        ],
        "public, no-cache",
    ),
    (&["/api/push/vapid-public-key"], "public, max-age=3600"),
];

fn policy(path: Option<&str>) -> &'static str {
    path.and_then(|path| {
        POLICIES
            .iter()
            .find(|(paths, _)| paths.contains(&path))
            .map(|(_, policy)| *policy)
    })
    .unwrap_or(PERSONAL)
}

/// Whether a request carries credentials: a token (in its header, or in the query for
/// clients that cannot send one) or the session cookie.
fn personal(request: &Request) -> bool {
    let headers = request.headers();
    headers.contains_key(header::AUTHORIZATION)
        || request
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p.starts_with("access_token=")))
        || headers
            .get_all(header::COOKIE)
            .iter()
            .any(|c| c.to_str().is_ok_and(|c| c.contains(SESSION_COOKIE)))
}

/// The middleware on the API's router.
pub async fn cache(mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    if method != Method::GET && method != Method::HEAD {
        return next.run(request).await;
    }
    let cache_control = if personal(&request) {
        PERSONAL
    } else {
        policy(
            request
                .extensions()
                .get::<MatchedPath>()
                .map(|p| p.as_str()),
        )
    };
    let if_none_match: Vec<HeaderValue> = request
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .cloned()
        .collect();
    // HEAD answers GET's headers, ETag included: the body is dropped on the way out.
    *request.method_mut() = Method::GET;
    let mut response = next.run(request).await;
    let status = response.status();
    if status.is_informational() {
        return response;
    }
    let cache_control = if status.is_client_error() || status.is_server_error() {
        ERROR
    } else {
        cache_control
    };
    let headers = response.headers_mut();
    // Over a handler's own (`no-cache` of event streams): one rule for the whole API.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    if cache_control.starts_with("public") {
        // A cache must not hand the anonymous answer to a caller with a token.
        headers.append(header::VARY, HeaderValue::from_static("authorization"));
    }
    if status != StatusCode::OK || !bufferable(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BUFFERED as usize).await else {
        return ApiError::Unavailable.into_response();
    };
    let tag = entity_tag(&bytes);
    let fresh = if_none_match
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| matches(v, &tag));
    parts.headers.insert(
        header::ETAG,
        HeaderValue::from_str(&tag).expect("base64url is a valid header"),
    );
    if fresh {
        parts.status = StatusCode::NOT_MODIFIED;
        parts.headers.remove(header::CONTENT_TYPE);
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::empty());
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// A JSON body of known, bounded length: never a stream (server-sent events).
fn bufferable(response: &Response) -> bool {
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    json && response
        .body()
        .size_hint()
        .exact()
        .is_some_and(|n| n <= MAX_BUFFERED)
}

/// A strong validator: the first 128 bits of the body's SHA-256, quoted.
fn entity_tag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest[..16]))
}

/// Whether an `If-None-Match` value names `tag`: `*`, or a list of entity tags compared
/// weakly (RFC 9110 §13.1.2: `W/"x"` matches `"x"`).
fn matches(if_none_match: &str, tag: &str) -> bool {
    if if_none_match.trim() == "*" {
        return true;
    }
    if_none_match
        .split(',')
        .map(|t| t.trim())
        .any(|t| t.strip_prefix("W/").unwrap_or(t) == tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly() {
        let tag = entity_tag(b"{}");
        assert!(tag.starts_with('"') && tag.ends_with('"') && tag.len() == 24);
        assert!(matches(&tag, &tag));
        assert!(matches(&format!("W/{tag}"), &tag));
        assert!(matches(&format!("\"other\", W/{tag} "), &tag));
        assert!(matches(" * ", &tag));
        assert!(!matches("\"other\"", &tag));
        assert!(!matches(tag.trim_matches('"'), &tag));
    }

    #[test]
    fn unlisted_routes_are_personal() {
        assert_eq!(policy(Some("/api/streams")), "public, max-age=30");
        assert_eq!(policy(Some("/api/users/{id}")), "public, max-age=300");
        for path in [Some("/api/users/me"), Some("/api/me/notifications"), None] {
            assert_eq!(policy(path), PERSONAL);
        }
    }
}
