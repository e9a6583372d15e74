//! The web UI's session: its refresh token lives in an httpOnly cookie (scripts on the
//! page, ours or a third party's, cannot read it), and only the short-lived access token
//! is in the page's memory, so a reload restores the session with one refresh.
//!
//! CSRF: the cookie is honoured only on requests carrying `x-onair-client: web` whose
//! `Origin`, when sent, is this host. A page on another site cannot make a browser send
//! that header with the cookie: a custom header needs a CORS preflight, and OnAir's CORS
//! never allows credentials, so the browser does not send the request. `SameSite=Strict`
//! already keeps the cookie off cross-site requests, and the Origin check also refuses a
//! sibling origin of the same site (another subdomain), which SameSite lets through.

use std::time::Duration;

use axum::extract::OptionalFromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite};

use crate::error::ApiError;

/// The header the web UI sends on its session calls.
const CLIENT_HEADER: &str = "x-onair-client";
/// The cookie holding the web UI's refresh token.
const REFRESH_COOKIE: &str = "onair_refresh";
/// The cookie goes only to the session endpoints, never to the rest of the API.
const COOKIE_PATH: &str = "/api/auth";

/// A session call from the web UI (`x-onair-client: web`, same origin). Absent (`None`)
/// for every other client, whose tokens travel in JSON bodies as before.
pub struct WebClient {
    /// The refresh token from the cookie, if the browser sent one.
    refresh_token: Option<String>,
    /// Reached over https (directly or through a proxy): the cookie is then `Secure`.
    https: bool,
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for WebClient {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, ApiError> {
        let headers = &parts.headers;
        if headers.get(CLIENT_HEADER).is_none_or(|v| v != "web") {
            return Ok(None);
        }
        if let Some(origin) = headers.get(header::ORIGIN)
            && !same_host(origin, headers)
        {
            return Err(ApiError::CrossOriginRefused);
        }
        let refresh_token = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|c| c.name() == REFRESH_COOKIE && !c.value().is_empty())
            .map(|c| c.value().to_owned());
        let https = first(headers, "x-forwarded-proto").is_some_and(|p| p == "https")
            || headers
                .get(header::ORIGIN)
                .is_some_and(|o| o.as_bytes().starts_with(b"https://"));
        Ok(Some(Self {
            refresh_token,
            https,
        }))
    }
}

impl WebClient {
    pub fn refresh_token(&self) -> Option<&str> {
        self.refresh_token.as_deref()
    }

    /// A `Set-Cookie` header that stores `token` for `ttl`.
    pub fn store(&self, token: &str, ttl: Duration) -> HeaderMap {
        let max_age = cookie::time::Duration::seconds(ttl.as_secs().try_into().unwrap_or(i64::MAX));
        self.set_cookie(token, max_age)
    }

    /// A `Set-Cookie` header that deletes the cookie (logout, a revoked or unknown token).
    pub fn clear(&self) -> HeaderMap {
        self.set_cookie("", cookie::time::Duration::ZERO)
    }

    fn set_cookie(&self, value: &str, max_age: cookie::time::Duration) -> HeaderMap {
        let cookie = Cookie::build((REFRESH_COOKIE, value))
            .http_only(true)
            .same_site(SameSite::Strict)
            .path(COOKIE_PATH)
            .secure(self.https)
            .max_age(max_age)
            .build();
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::try_from(cookie.to_string()) {
            headers.insert(header::SET_COOKIE, value);
        }
        headers
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the host the request was sent to
/// (`Host`, or `X-Forwarded-Host` behind a proxy that rewrites `Host`).
fn same_host(origin: &HeaderValue, headers: &HeaderMap) -> bool {
    let Some(authority) = origin.to_str().ok().and_then(|o| o.split_once("://")) else {
        return false;
    };
    let authority = authority.1;
    [first(headers, "x-forwarded-host"), first(headers, "host")]
        .into_iter()
        .flatten()
        .any(|host| host.eq_ignore_ascii_case(authority))
}

/// A header's first comma-separated value (proxies append theirs).
fn first<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let value = headers.get(name)?.to_str().ok()?;
    value.split(',').next().map(str::trim)
}
