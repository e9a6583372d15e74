//! The API contract: the served OpenAPI document lists exactly the routes the router
//! answers, every operation documents the statuses its extractors and the middleware can
//! answer, and the interactive docs are served by the binary itself. (The contract fuzzer,
//! `scripts/contract-test`, checks the document against real answers.)

use std::collections::{BTreeMap, BTreeSet};

use onair_store::DbConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{SECRET, TestApp, assert_error};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    the_document_lists_exactly_the_routes_the_router_answers,
    every_operation_documents_what_its_extractors_and_middleware_answer,
    interactive_docs_are_served_by_the_binary,
    request_bodies_are_json_objects,
);

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// `(path, method)` with every path parameter written `{}`, so `{id}` and `{*rest}` match.
type Routes = BTreeSet<(String, String)>;

fn template(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        out.push_str("{}");
        rest = &rest[open + rest[open..].find('}').expect("closed parameter") + 1..];
    }
    out + rest
}

/// Every API route the app's router answers, read from the router itself: its path table
/// and each route's `Allow` header (HEAD comes with GET). The web UI's pages, assets and
/// root files are not API operations and are left out.
async fn routed() -> Routes {
    let dir = tempfile::tempdir().unwrap();
    let mut config = onair_server::Config {
        data_dir: dir.path().to_owned(),
        ..onair_server::Config::default()
    };
    config.http.bind = "127.0.0.1:0".parse().unwrap();
    config.auth.secret_key = Some(SECRET.into());
    config.media.rtmp_enabled = false;
    let app = onair_server::Application::build(config).await.unwrap();
    // axum lists no routes; its `Debug` shows the path table and each route's methods.
    let debug = format!("{:?}", app.router());
    let own = debug
        .split(", fallback_router:")
        .next()
        .expect("the router's own routes");
    let (endpoints, node) = own
        .split_once(", node: Node { paths: {")
        .expect("path table");
    let paths: BTreeMap<&str, &str> = node
        .split("RouteId(")
        .skip(1)
        .map(|entry| {
            let (id, rest) = entry.split_once("): \"").expect("RouteId(n): \"path\"");
            (id, rest.split('"').next().unwrap())
        })
        .collect();
    let mut routes = Routes::new();
    for entry in endpoints.split("RouteId(").skip(1) {
        let (id, endpoint) = entry.split_once(')').unwrap();
        let path = paths[id];
        let root_file = onair_web::root_files().iter().any(|f| f.path == path);
        if onair_server::UI_PAGES.contains(&path) || path == onair_server::UI_ASSETS || root_file {
            continue;
        }
        let allow = endpoint
            .split_once("allow_header: Bytes(b\"")
            .unwrap_or_else(|| panic!("{path} answers every method: {endpoint}"))
            .1
            .split('"')
            .next()
            .unwrap();
        for method in allow.split(',').filter(|m| *m != "HEAD") {
            routes.insert((template(path), method.to_lowercase()));
        }
    }
    assert!(routes.len() > 40, "read too few routes from {debug}");
    routes
}

fn operations(doc: &Value) -> impl Iterator<Item = (&str, &str, &Value)> {
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            METHODS.into_iter().filter_map(move |method| {
                item.get(method)
                    .map(|operation| (path.as_str(), method, operation))
            })
        })
}

async fn the_document_lists_exactly_the_routes_the_router_answers(db: DbConfig) {
    let routed = routed().await;
    let app = TestApp::spawn(db).await;
    let (status, doc) = app.get("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let documented: Routes = operations(&doc)
        .map(|(path, method, _)| (template(path), method.to_owned()))
        .collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routed, not documented: {undocumented:?}"
    );
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(unrouted.is_empty(), "documented, not routed: {unrouted:?}");

    // And each documented operation reaches a handler when called.
    for (path, method, _) in operations(&doc) {
        let concrete = template(path).replace("{}", &uuid::Uuid::now_v7().to_string());
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let request = app.client.request(method.clone(), app.url(&concrete));
        let (status, body) = crate::support::read(request.send().await.unwrap()).await;
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {body}"
        );
        assert_ne!(body["error"]["code"], "route_not_found", "{method} {path}");
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

fn response<'a>(operation: &'a Value, status: &str) -> &'a Value {
    &operation["responses"][status]
}

#[track_caller]
fn assert_documents(operation: &Value, what: &str, status: &str, code: &str) {
    let answer = response(operation, status);
    let description = answer["description"].as_str().unwrap_or_default();
    assert!(
        description.contains(&format!("`{code}`")),
        "{what}: {status} does not name `{code}`: {answer}"
    );
    assert_eq!(
        answer["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
        "{what}: {status}"
    );
}

async fn every_operation_documents_what_its_extractors_and_middleware_answer(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let (_, doc) = app.get("/api/openapi.json").await;
    for (path, method, operation) in operations(&doc) {
        let what = format!("{method} {path}");
        for (status, answer) in operation["responses"].as_object().unwrap() {
            assert!(
                answer["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{what}: {status} has no description"
            );
        }
        // The deadline and the database: every operation.
        assert_documents(operation, &what, "503", "timeout");
        assert_documents(operation, &what, "503", "service_unavailable");
        assert!(response(operation, "503")["headers"]["Retry-After"].is_object());
        // The rate limits: the API's operations, not the docs, probes or media (nor the
        // media server's callbacks, which carry the hook secret).
        let unlimited = ["/api/docs", "/api/openapi.json", "/api/hooks/"];
        let api = path.starts_with("/api/") && !unlimited.iter().any(|p| path.starts_with(p));
        if api {
            assert_documents(operation, &what, "429", "rate_limited");
            for header in ["Retry-After", "RateLimit", "RateLimit-Policy"] {
                assert!(
                    response(operation, "429")["headers"][header].is_object(),
                    "{what}: 429 without {header}"
                );
            }
        } else {
            assert!(
                response(operation, "429").is_null(),
                "{what}: never limited"
            );
        }
        // The HTTP cache: the API's reads answering JSON (not WebSockets, not event streams).
        let json_read = method == "get"
            && response(operation, "200")["content"]["application/json"].is_object();
        if api && json_read {
            for header in ["ETag", "Cache-Control"] {
                for status in ["200", "304"] {
                    assert!(
                        response(operation, status)["headers"][header].is_object(),
                        "{what}: {status} without {header}"
                    );
                }
            }
            assert!(response(operation, "304")["content"].is_null(), "{what}");
            let documented = operation["parameters"].as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|p| p["in"] == "header" && p["name"] == "If-None-Match")
            });
            assert!(documented, "{what}: no If-None-Match");
        } else {
            assert!(response(operation, "304").is_null(), "{what}: never 304");
        }

        let parameters = operation["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let named = |place: &str, name: &str| {
            parameters
                .iter()
                .find(|p| p["in"] == place && p["name"] == name)
        };
        for parameter in &parameters {
            let name = parameter["name"].as_str().unwrap();
            if parameter["in"] == "path" {
                assert_documents(operation, &what, "400", "invalid_path");
                if name == "id" || name.ends_with("_id") {
                    assert_eq!(parameter["schema"]["format"], "uuid", "{what}: {name}");
                }
            } else if parameter["in"] == "query" {
                assert_documents(operation, &what, "400", "invalid_query");
            }
        }
        if let Some(limit) = named("query", "limit") {
            assert_documents(operation, &what, "400", "invalid_limit");
            assert_eq!(
                (
                    &limit["schema"]["minimum"],
                    &limit["schema"]["maximum"],
                    &limit["schema"]["default"]
                ),
                (&json!(1), &json!(100), &json!(20)),
                "{what}"
            );
        }
        if let Some(cursor) = named("query", "cursor") {
            assert_documents(operation, &what, "400", "invalid_cursor");
            assert!(cursor["schema"]["pattern"].is_string(), "{what}");
        }
        if operation["requestBody"]["content"]["application/json"].is_object() {
            assert_documents(operation, &what, "400", "invalid_json");
            assert_documents(operation, &what, "413", "payload_too_large");
            assert_documents(operation, &what, "415", "unsupported_media_type");
            assert_documents(operation, &what, "422", "invalid_body");
        }
        if let Some(security) = operation["security"].as_array() {
            if !security.contains(&json!({})) {
                assert_documents(operation, &what, "401", "unauthorized");
            }
            assert_documents(operation, &what, "401", "invalid_token");
            assert_documents(operation, &what, "401", "token_expired");
        }
    }
    let status = doc["paths"]["/api/streams"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "status")
        .unwrap();
    assert_eq!(
        status["schema"]["enum"],
        json!(["live", "offline", "ended"])
    );
}

async fn interactive_docs_are_served_by_the_binary(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    // reqwest follows the redirect from /api/docs to /api/docs/.
    let page = app.client.get(app.url("/api/docs")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.url().path(), "/api/docs/");
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    // Every script and style sheet the page loads comes from this server.
    let assets: Vec<&str> = ["src=\"", "href=\""]
        .iter()
        .flat_map(|attr| html.split(attr).skip(1))
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    for kind in [".js", ".css"] {
        assert!(
            assets.iter().any(|a| a.ends_with(kind)),
            "no {kind} in {html}"
        );
    }
    for asset in assets {
        assert!(!asset.contains("://"), "loaded from elsewhere: {asset}");
        let url = app.url(&format!("/api/docs/{}", asset.trim_start_matches("./")));
        let response = app.client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        let body = response.text().await.unwrap();
        if asset.ends_with("swagger-initializer.js") {
            assert!(body.contains("/api/openapi.json"), "{body}");
        }
    }
    assert_error(
        &app.get("/api/docs/no-such-file.js").await,
        404,
        "not_found",
    );
}

async fn request_bodies_are_json_objects(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let me = app.signup("positional").await;
    let (status, _) = app
        .request(
            Method::PATCH,
            "/api/users/me",
            Some(&me.access),
            Some(json!({"display_name": "Kept"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // serde would read an array as the struct's fields by position.
    for body in [json!([null, null]), json!(["Other"]), json!("text")] {
        let answer = app
            .request(Method::PATCH, "/api/users/me", Some(&me.access), Some(body))
            .await;
        assert_error(&answer, 422, "invalid_body");
    }
    let (_, profile) = app.get_as("/api/users/me", &me.access).await;
    assert_eq!(profile["display_name"], "Kept");
}
