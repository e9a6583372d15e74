//! Operators: `/api/admin/…` for admins only, suspensions that log the account out, end
//! its broadcast (cutting its encoder) and refuse it until lifted, ending broadcasts,
//! reviving dead jobs, and the audit log of it all, API and command line alike.

use std::time::Duration;

use onair_server::{Admin, AdminCreated};
use onair_store::jobs::NewJob;
use onair_store::{Actor, DbConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::media::{broadcast_in, publish, stream_key};
use crate::notifications::store_of;
use crate::support::{TestApp, User, assert_error};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    only_admins_reach_the_admin_api,
    a_suspension_logs_out_ends_the_broadcast_and_refuses_the_account,
    admins_end_broadcasts_and_revive_dead_jobs,
    suspending_a_publisher_cuts_its_encoder_here_and_from_the_command_line,
);

/// Signs `username` up and makes it an admin the way `onair admin create` does.
async fn admin_user(app: &TestApp, username: &str) -> User {
    let user = app.signup(username).await;
    let admin = Admin::new(store_of(app).await, None);
    let created = admin
        .create_admin(Actor::Cli, username, None, || panic!("no password needed"))
        .await
        .unwrap();
    assert_eq!(created, AdminCreated::Promoted(user.id.parse().unwrap()));
    user
}

async fn act(app: &TestApp, token: Option<&str>, path: &str) -> (StatusCode, Value) {
    app.request(Method::POST, path, token, None).await
}

fn suspend(user: &User) -> String {
    format!("/api/admin/users/{}/suspend", user.id)
}

fn unsuspend(user: &User) -> String {
    format!("/api/admin/users/{}/unsuspend", user.id)
}

/// A creator `caster` live through the API, and its broadcast.
async fn on_air(app: &TestApp) -> (User, Value) {
    let caster = app.signup("caster").await;
    let start = json!({"title": "on air"});
    let (status, live) = app
        .post("/api/streams/start", Some(&caster.access), start)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{live}");
    (caster, live)
}

/// The audit log's actions, newest first, walked a page of one at a time.
async fn audited(app: &TestApp, admin: &User) -> Vec<(String, Value)> {
    let mut entries = Vec::new();
    let mut path = "/api/admin/audit?limit=1".to_owned();
    loop {
        let (status, page) = app.get_as(&path, &admin.access).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for entry in page["data"].as_array().unwrap() {
            entries.push((entry["action"].as_str().unwrap().to_owned(), entry.clone()));
        }
        match page["pagination"]["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/admin/audit?limit=1&cursor={cursor}"),
            None => return entries,
        }
    }
}

async fn only_admins_reach_the_admin_api(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let viewer = app.signup("viewer").await;
    let boss = admin_user(&app, "boss").await;
    let nobody = Uuid::now_v7();
    let reads = ["/api/admin/audit", "/api/admin/jobs/dead"];
    let writes = [
        format!("/api/admin/users/{nobody}/suspend"),
        format!("/api/admin/users/{nobody}/unsuspend"),
        format!("/api/admin/streams/{nobody}/end"),
        format!("/api/admin/jobs/{nobody}/revive"),
    ];
    for path in reads {
        assert_error(&app.get(path).await, 401, "unauthorized");
        assert_error(&app.get_as(path, &viewer.access).await, 403, "forbidden");
    }
    for path in &writes {
        assert_error(&act(&app, None, path).await, 401, "unauthorized");
        assert_error(
            &act(&app, Some(&viewer.access), path).await,
            403,
            "forbidden",
        );
    }

    let me = Some(boss.access.as_str());
    assert_error(
        &act(&app, me, &suspend(&boss)).await,
        422,
        "cannot_suspend_self",
    );
    for path in &writes {
        assert_error(&act(&app, me, path).await, 404, "not_found");
    }
    let malformed = "/api/admin/users/not-an-id/suspend";
    assert_error(&act(&app, me, malformed).await, 400, "invalid_path");
    let long = json!({"reason": "x".repeat(501)});
    let answer = app.post(&suspend(&viewer), me, long).await;
    assert_error(&answer, 422, "validation_failed");
    let bad_cursor = app
        .get_as("/api/admin/audit?cursor=forged", &boss.access)
        .await;
    assert_error(&bad_cursor, 400, "invalid_cursor");

    // Refused requests changed nothing; only the command line's grant is recorded.
    let log = audited(&app, &boss).await;
    assert_eq!(log.len(), 1);
    let (action, entry) = &log[0];
    assert_eq!(action, "user.grant_admin");
    assert_eq!(
        (&entry["actor"], &entry["actor_id"]),
        (&json!("cli"), &Value::Null)
    );
}

async fn a_suspension_logs_out_ends_the_broadcast_and_refuses_the_account(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let boss = admin_user(&app, "boss").await;
    let (caster, live) = on_air(&app).await;

    let me = Some(boss.access.as_str());
    let (status, done) = app
        .post(&suspend(&caster), me, json!({"reason": "spam"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["revoked_sessions"], 1);
    assert_eq!(done["ended_stream"], live["id"]);
    let (_, ended) = app
        .get(&format!("/api/streams/{}", live["id"].as_str().unwrap()))
        .await;
    assert_eq!(ended["status"], "ended");
    let again = app.post(&suspend(&caster), me, json!({})).await;
    assert_error(&again, 409, "already_suspended");

    let refresh = json!({"refresh_token": caster.refresh});
    let refused = app.post("/api/auth/refresh", None, refresh).await;
    assert_error(&refused, 403, "account_suspended");
    let login = |password: &str| json!({"login": "caster", "password": password});
    let right = app
        .post("/api/auth/login", None, login("correct horse battery"))
        .await;
    assert_error(&right, 403, "account_suspended");
    let wrong = app
        .post("/api/auth/login", None, login("wrong horse battery"))
        .await;
    assert_error(&wrong, 401, "invalid_credentials");
    // The access token the account still holds cannot take it on air again; for other
    // requests it works until it expires (it is verified without the database).
    let start = json!({"title": "back"});
    let restart = app
        .post("/api/streams/start", Some(&caster.access), start.clone())
        .await;
    assert_error(&restart, 403, "account_suspended");
    let (status, _) = app.get_as("/api/me/stream-key", &caster.access).await;
    assert_eq!(status, StatusCode::OK);

    let (status, _) = act(&app, me, &unsuspend(&caster)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &act(&app, me, &unsuspend(&caster)).await,
        409,
        "not_suspended",
    );
    let (status, session) = app
        .post("/api/auth/login", None, login("correct horse battery"))
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let token = session["access_token"].as_str().unwrap();
    let (status, _) = app.post("/api/streams/start", Some(token), start).await;
    assert_eq!(status, StatusCode::CREATED);

    let log = audited(&app, &boss).await;
    let actions: Vec<&str> = log.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        ["user.unsuspend", "user.suspend", "user.grant_admin"]
    );
    let suspension = &log[1].1;
    assert_eq!(suspension["actor"], "api");
    assert_eq!(suspension["actor_id"], boss.id.as_str());
    assert_eq!(
        (&suspension["target_kind"], &suspension["target_id"]),
        (&json!("user"), &json!(caster.id))
    );
    assert_eq!(suspension["details"]["reason"], "spam");
    assert_eq!(suspension["details"]["ended_stream"], live["id"]);
}

async fn admins_end_broadcasts_and_revive_dead_jobs(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let boss = admin_user(&app, "boss").await;
    let (_, live) = on_air(&app).await;
    let end = format!("/api/admin/streams/{}/end", live["id"].as_str().unwrap());
    let me = Some(boss.access.as_str());
    let (status, ended) = app.post(&end, me, json!({"reason": "rules"})).await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    assert_eq!(
        (&ended["id"], &ended["status"]),
        (&live["id"], &json!("ended"))
    );
    assert_error(&act(&app, me, &end).await, 409, "stream_not_live");

    // A job that failed for good (no worker runs in this test).
    let store = store_of(&app).await;
    store
        .enqueue(NewJob::now("no_such_kind", &json!({"n": 1})))
        .await
        .unwrap();
    let lease = onair_store::Timestamp::from(chrono::Utc::now() + Duration::from_secs(30));
    let claimed = store.claim_jobs(10, lease).await.unwrap();
    let job = claimed.iter().find(|j| j.kind == "no_such_kind").unwrap();
    store.bury_job(job.lease(), "unknown kind").await.unwrap();
    let (status, dead) = app.get_as("/api/admin/jobs/dead", &boss.access).await;
    assert_eq!(status, StatusCode::OK, "{dead}");
    let listed = &dead["data"][0];
    assert_eq!(
        (&listed["id"], &listed["payload"]),
        (&json!(job.id), &json!({"n": 1}))
    );
    let revive = format!("/api/admin/jobs/{}/revive", job.id);
    assert_eq!(act(&app, me, &revive).await.0, StatusCode::NO_CONTENT);
    assert_error(&act(&app, me, &revive).await, 404, "not_found");

    let log = audited(&app, &boss).await;
    let actions: Vec<&str> = log.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(actions, ["job.revive", "stream.end", "user.grant_admin"]);
    assert_eq!(log[1].1["details"]["reason"], "rules");
}

/// `publisher` is disconnected by the server within `limit`.
async fn cut_off(publisher: &mut tokio::process::Child, limit: Duration) {
    let exit = tokio::time::timeout(limit, publisher.wait()).await;
    assert!(
        !exit
            .expect("the encoder is cut off in time")
            .unwrap()
            .success()
    );
}

async fn suspending_a_publisher_cuts_its_encoder_here_and_from_the_command_line(db: DbConfig) {
    let app = TestApp::spawn(db).await;
    let boss = admin_user(&app, "boss").await;
    let caster = app.signup("caster").await;
    let key = stream_key(&app, &caster).await;
    let mut encoder = publish(&app, &key);
    broadcast_in(&app, &caster, "live").await;

    // Through this node's API: cut at once.
    let me = Some(boss.access.as_str());
    let (status, done) = app.post(&suspend(&caster), me, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    cut_off(&mut encoder, Duration::from_secs(5)).await;
    // The key is refused while the account is suspended.
    let mut refused = publish(&app, &key);
    cut_off(&mut refused, Duration::from_secs(10)).await;
    assert_eq!(
        broadcast_in(&app, &caster, "ended").await["id"],
        done["ended_stream"]
    );

    // From the command line (no node): the ingest's re-check cuts it.
    assert_eq!(
        act(&app, me, &unsuspend(&caster)).await.0,
        StatusCode::NO_CONTENT
    );
    let mut encoder = publish(&app, &key);
    let live = broadcast_in(&app, &caster, "live").await;
    assert_ne!(live["id"], done["ended_stream"]);
    let cli = Admin::new(store_of(&app).await, None);
    let caster_id = cli.user_id("caster").await.unwrap();
    cli.suspend(Actor::Cli, caster_id, Some("from the shell"))
        .await
        .unwrap();
    cut_off(&mut encoder, Duration::from_secs(10)).await;
}
