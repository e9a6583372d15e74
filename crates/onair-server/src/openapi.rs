//! The API contract served at `/api/openapi.json`, and the interactive docs at `/api/docs`.
//!
//! A handler's `#[utoipa::path]` lists what only it can answer (its success, a 404, a 409…).
//! What an operation answers because of the extractors and middleware it goes through is
//! added here from the operation's own shape, so no handler can leave it out:
//! `invalid_path` for path parameters; `invalid_query` for query parameters, and
//! `invalid_limit` / `invalid_cursor` with their bounds for pages; `invalid_json`, 413, 415
//! and `invalid_body` for JSON bodies; 401 for authenticated operations; 429
//! (`rate_limited`) and, on reads answering JSON, 304 with the HTTP cache's headers for
//! the API router's operations; 503 (`timeout`, `service_unavailable`) for every one.

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use onair_core::{CursorError, Limit, LimitError, StreamSort, StreamStatus};
use onair_store::{ArchiveStatus, ArchiveVisibility, WebhookEvent};
use serde_json::json;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::{
    Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::{
    Content, HeaderBuilder, HttpMethod, Object, ObjectBuilder, OpenApi, PathItem, Ref, RefOr,
    Required, ResponseBuilder, SecurityRequirement, Type,
};
use utoipa_swagger_ui::SwaggerUi;

use crate::error::{ApiError, JSON_BODY, RateLimitState};

/// Where the document is served.
pub const DOCUMENT: &str = "/api/openapi.json";
/// Where Swagger UI is served (its files are compiled into the binary).
pub const DOCS: &str = "/api/docs";

/// A signed cursor as `Cursors::encode` writes it: base64url body, `.`, base64url tag.
const CURSOR_PATTERN: &str = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$";

/// Adds to every operation of `openapi` what its extractors and the middleware can
/// answer (`api`: the paths of the API's router, behind the rate limits and the HTTP
/// cache), the bounds of the pagination parameters, and the docs routes themselves.
pub fn complete(mut openapi: OpenApi, api: &BTreeSet<String>) -> OpenApi {
    describe_docs(&mut openapi);
    for (path, item) in &mut openapi.paths.paths {
        let limited = api.contains(path);
        if let Some(read) = item.get.as_mut().filter(|_| limited) {
            add_validators(read);
        }
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flat_map(Option::as_mut) {
            bound_pagination(operation);
            let mut by_status = BTreeMap::<StatusCode, Vec<&'static str>>::new();
            for error in shared_errors(operation, limited) {
                by_status
                    .entry(error.status())
                    .or_default()
                    .push(error.code());
            }
            for (status, codes) in by_status {
                add_errors(operation, status, &codes);
            }
            for (status, response) in &mut operation.responses.responses {
                if let RefOr::T(response) = response
                    && response.description.is_empty()
                {
                    response.description = status
                        .parse()
                        .ok()
                        .and_then(|s: StatusCode| s.canonical_reason())
                        .unwrap_or("Answer")
                        .to_owned();
                }
            }
        }
    }
    openapi
}

/// The document at [`DOCUMENT`] and Swagger UI at [`DOCS`], for any router state.
pub fn routes<S: Clone + Send + Sync + 'static>(openapi: OpenApi) -> Router<S> {
    Router::from(SwaggerUi::new(DOCS).url(DOCUMENT, openapi))
        .layer(axum::middleware::map_response(json_not_found))
}

/// Swagger UI answers an unknown file with a bare 404; the API's errors are JSON.
async fn json_not_found(response: Response) -> Response {
    if response.status() == StatusCode::NOT_FOUND {
        return ApiError::NotFound("documentation file").into_response();
    }
    response
}

/// Errors every operation of this shape can answer before or around its handler.
fn shared_errors(operation: &Operation, limited: bool) -> Vec<ApiError> {
    let mut errors = vec![ApiError::Timeout, ApiError::Unavailable];
    if limited {
        errors.push(ApiError::RateLimited(RateLimitState::default()));
    }
    let parameters: Vec<&Parameter> = operation
        .parameters
        .iter()
        .flatten()
        .filter_map(|p| match p {
            RefOr::T(p) => Some(p),
            RefOr::Ref(_) => None,
        })
        .collect();
    if parameters
        .iter()
        .any(|p| p.parameter_in == ParameterIn::Path)
    {
        errors.push(ApiError::InvalidPath(String::new()));
    }
    if parameters
        .iter()
        .any(|p| p.parameter_in == ParameterIn::Query)
    {
        errors.push(ApiError::InvalidQuery(String::new()));
    }
    if parameters.iter().any(|p| is_query(p, "limit")) {
        errors.push(ApiError::InvalidLimit(LimitError));
    }
    if parameters.iter().any(|p| is_query(p, "cursor")) {
        errors.push(ApiError::InvalidCursor(CursorError));
    }
    let takes_json = matches!(&operation.request_body, Some(RefOr::T(body))
        if body.content.contains_key("application/json"));
    if takes_json {
        errors.extend([
            ApiError::InvalidJson(String::new()),
            ApiError::InvalidBody(String::new()),
            ApiError::UnsupportedMediaType(JSON_BODY),
            ApiError::PayloadTooLarge,
        ]);
    }
    if let Some(requirements) = operation.security.as_ref().filter(|r| !r.is_empty()) {
        // An empty requirement makes the token optional: a present one must still be valid.
        if !requirements.contains(&SecurityRequirement::default()) {
            errors.push(ApiError::Unauthorized);
        }
        errors.extend([ApiError::InvalidToken, ApiError::TokenExpired]);
    }
    errors
}

fn is_query(parameter: &Parameter, name: &str) -> bool {
    parameter.parameter_in == ParameterIn::Query && parameter.name == name
}

/// Documents `codes` under `status`: a new error response, or more codes on the one the
/// handler declared.
fn add_errors(operation: &mut Operation, status: StatusCode, codes: &[&str]) {
    let response = operation
        .responses
        .responses
        .entry(status.as_str().to_owned())
        .or_insert_with(|| RefOr::T(ResponseBuilder::new().build()));
    let RefOr::T(response) = response else {
        return;
    };
    let missing: Vec<String> = codes
        .iter()
        .map(|code| format!("`{code}`"))
        .filter(|code| !response.description.contains(code.as_str()))
        .collect();
    if !missing.is_empty() {
        response.description = match response.description.as_str() {
            "" => missing.join(", "),
            own => format!("{own}; also {}", missing.join(", ")),
        };
    }
    if response.content.is_empty() {
        response.content.insert(
            "application/json".to_owned(),
            RefOr::T(Content::new(Some(Ref::from_schema_name("ErrorBody")))),
        );
    }
    let retry_after = (
        "Retry-After",
        Type::Integer,
        "Seconds to wait before retrying",
    );
    let headers = match status {
        StatusCode::SERVICE_UNAVAILABLE => vec![retry_after],
        StatusCode::TOO_MANY_REQUESTS => vec![
            retry_after,
            (
                "RateLimit-Policy",
                Type::String,
                "The quota refused, e.g. `\"user\";q=100;w=60` (IETF draft httpapi-ratelimit-headers)",
            ),
            (
                "RateLimit",
                Type::String,
                "Where the client stands, e.g. `\"user\";r=0;t=7` (also on every counted answer)",
            ),
        ],
        _ => Vec::new(),
    };
    for (name, schema, description) in headers {
        response
            .headers
            .entry(name.to_owned())
            .or_insert_with(|| RefOr::T(described_header(schema, description)));
    }
}

fn described_header(schema: Type, description: &str) -> Header {
    HeaderBuilder::new()
        .schema(Some(Object::with_type(schema)))
        .description(Some(description))
        .build()
}

/// A read answering JSON gets an `ETag` and answers `If-None-Match` with 304 (the HTTP
/// cache); both answers say how they may be cached.
fn add_validators(operation: &mut Operation) {
    let responses = &mut operation.responses.responses;
    let Some(RefOr::T(ok)) = responses.get_mut("200") else {
        return;
    };
    if !ok.content.contains_key("application/json") {
        return;
    }
    let headers = [
        (
            "ETag",
            "A strong validator of this body, for `If-None-Match`",
        ),
        (
            "Cache-Control",
            "`public, max-age=…` or `public, no-cache` for public reads; \
             `private, no-store` when the request carries credentials",
        ),
    ];
    for (name, description) in headers {
        ok.headers
            .entry(name.to_owned())
            .or_insert_with(|| RefOr::T(described_header(Type::String, description)));
    }
    let not_modified = headers.into_iter().fold(
        ResponseBuilder::new()
            .description("Not Modified: `If-None-Match` names the current `ETag`; no body"),
        |response, (name, description)| {
            response.header(name, described_header(Type::String, description))
        },
    );
    responses
        .entry(StatusCode::NOT_MODIFIED.as_str().to_owned())
        .or_insert_with(|| RefOr::T(not_modified.build()));
    let if_none_match = ParameterBuilder::new()
        .name("If-None-Match")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .schema(Some(Object::with_type(Type::String)))
        .description(Some(
            "`ETag`s seen before (weak `W/` forms match too) or `*`: answered 304 if current",
        ))
        .build();
    operation
        .parameters
        .get_or_insert_with(Vec::new)
        .push(RefOr::T(if_none_match));
}

/// Every list takes the same `limit` and `cursor`: their real bounds, from the rules.
fn bound_pagination(operation: &mut Operation) {
    for parameter in operation.parameters.iter_mut().flatten() {
        let RefOr::T(parameter) = parameter else {
            continue;
        };
        let schema = if is_query(parameter, "limit") {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(Limit::MAX))
                .default(Some(json!(Limit::DEFAULT)))
                .build()
        } else if is_query(parameter, "cursor") {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(CURSOR_PATTERN))
                .build()
        } else {
            continue;
        };
        parameter.schema = Some(RefOr::T(schema.into()));
    }
}

/// The docs are routes of the app like any other, so they are in the document too.
fn describe_docs(openapi: &mut OpenApi) {
    let answer = |status: &str, description: &str, content_type: Option<&str>| {
        let mut response = ResponseBuilder::new().description(description);
        if let Some(content_type) = content_type {
            // Errors are `ErrorBody`s; the rest are files of any shape.
            let schema = (content_type == "application/json" && status != "200")
                .then(|| Ref::from_schema_name("ErrorBody"));
            response = response.content(content_type, Content::new(schema));
        }
        (status.to_owned(), response.build())
    };
    let get = |summary: &str, answers: Vec<(String, utoipa::openapi::Response)>| {
        let mut operation = OperationBuilder::new().tag("docs").summary(Some(summary));
        for (status, response) in answers {
            operation = operation.response(status, response);
        }
        operation
    };
    let paths = &mut openapi.paths.paths;
    paths.insert(
        DOCUMENT.to_owned(),
        PathItem::new(
            HttpMethod::Get,
            get(
                "This OpenAPI document.",
                vec![answer("200", "The document", Some("application/json"))],
            ),
        ),
    );
    paths.insert(
        DOCS.to_owned(),
        PathItem::new(
            HttpMethod::Get,
            get(
                "Interactive API docs (Swagger UI).",
                vec![answer("303", "To the docs page", None)],
            ),
        ),
    );
    paths.insert(
        format!("{DOCS}/"),
        PathItem::new(
            HttpMethod::Get,
            get(
                "The docs page.",
                vec![answer("200", "Swagger UI", Some("text/html"))],
            ),
        ),
    );
    let file = ParameterBuilder::new()
        .name("file")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .schema(Some(Object::with_type(Type::String)))
        .description(Some("A Swagger UI file, e.g. `swagger-ui.css`"));
    paths.insert(
        format!("{DOCS}/{{file}}"),
        PathItem::new(
            HttpMethod::Get,
            get(
                "A file of the docs page (script, style sheet, image).",
                vec![
                    answer("200", "The file", Some("*/*")),
                    answer("404", "`not_found`", Some("application/json")),
                ],
            )
            .parameter(file),
        ),
    );
}

/// `live`, `offline` or `ended`.
pub fn stream_status() -> Object {
    one_of(
        [
            StreamStatus::Live,
            StreamStatus::Offline,
            StreamStatus::Ended,
        ]
        .map(StreamStatus::as_str),
    )
}

/// `started` or `viewers`.
pub fn stream_sort() -> Object {
    one_of([StreamSort::Started, StreamSort::Viewers].map(StreamSort::as_str))
}

/// `processing`, `ready` or `failed`.
pub fn archive_status() -> Object {
    one_of(
        [
            ArchiveStatus::Processing,
            ArchiveStatus::Ready,
            ArchiveStatus::Failed,
        ]
        .map(ArchiveStatus::as_str),
    )
}

/// `public`, `unlisted` or `private`.
pub fn archive_visibility() -> Object {
    one_of(ArchiveVisibility::ALL.map(ArchiveVisibility::as_str))
}

/// `stream.online` or `stream.offline`.
pub fn webhook_event() -> Object {
    one_of([WebhookEvent::StreamOnline, WebhookEvent::StreamOffline].map(WebhookEvent::as_str))
}

fn one_of<const N: usize>(values: [&str; N]) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .build()
}
