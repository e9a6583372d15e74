//! Read-your-writes over lagging read replicas (review S6). A write request (any method
//! but the safe ones) runs with all its reads on the primary, and once it succeeds its
//! user is marked for a window; that user's requests in the window read on the primary
//! too, on every node (the mark lives in Redis in scale-out). Everyone else reads from
//! the replicas in rotation.
//!
//! The window covers the staleness a replica in rotation can reach: a check found it at
//! most `replica_max_lag` behind, the next comes a `replica_check_interval` later, and a
//! check may take up to `replica_max_lag` before it answers (its timeout). So
//! 2 × max lag + interval, 2.5 s by default. Only with replicas configured: without them
//! every read is on the primary anyway and no mark is kept.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use onair_infra::{RecentMarks, RedisPool};
use onair_store::{ReplicaPolicy, reading_primary};
use uuid::Uuid;

use crate::identity::{AccessTokens, MaybeAuthUser};

/// A mark store that has not answered by then has failed: the request reads on the
/// primary (always correct) rather than waiting.
const MARKS_TIMEOUT: Duration = Duration::from_millis(500);

pub struct ReadYourWrites {
    /// `None`: no replicas, nothing to do.
    marks: Option<RecentMarks>,
    access_tokens: Arc<AccessTokens>,
}

impl ReadYourWrites {
    /// `replicas`: their policy, when there are any.
    pub fn new(
        replicas: Option<ReplicaPolicy>,
        access_tokens: Arc<AccessTokens>,
        redis: Option<&RedisPool>,
    ) -> Self {
        let marks = replicas.map(|policy| {
            let window = 2 * policy.max_lag + policy.check_interval;
            match redis {
                Some(pool) => RecentMarks::redis(pool.clone(), "onair:wrote:", window),
                None => RecentMarks::in_process(window),
            }
        });
        Self {
            marks,
            access_tokens,
        }
    }

    /// Whether `user` wrote within the window; a mark store that fails says yes.
    async fn wrote_lately(&self, marks: &RecentMarks, user: Uuid) -> bool {
        match tokio::time::timeout(MARKS_TIMEOUT, marks.is_marked(&user.to_string())).await {
            Ok(Ok(marked)) => marked,
            Ok(Err(error)) => {
                marks_failed(&error);
                true
            }
            Err(_) => {
                marks_failed(&"no answer in time");
                true
            }
        }
    }

    async fn remember(&self, marks: &RecentMarks, user: Uuid) {
        match tokio::time::timeout(MARKS_TIMEOUT, marks.mark(&user.to_string())).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => marks_failed(&error),
            Err(_) => marks_failed(&"no answer in time"),
        }
    }
}

fn marks_failed(error: &dyn std::fmt::Display) {
    tracing::warn!(%error, "read-your-writes marks failed");
}

/// The middleware on `/api`.
pub async fn route(
    State(ryw): State<Arc<ReadYourWrites>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(marks) = &ryw.marks else {
        return next.run(request).await;
    };
    let (mut parts, body) = request.into_parts();
    // An invalid token is the handler's to refuse: until then the caller is anonymous.
    let user = MaybeAuthUser::from_request_parts(&mut parts, &ryw.access_tokens)
        .await
        .ok()
        .and_then(|MaybeAuthUser(user)| user);
    let request = Request::from_parts(parts, body);
    // GET, HEAD, OPTIONS and TRACE change nothing.
    if !request.method().is_safe() {
        let response = reading_primary(next.run(request)).await;
        let status = response.status();
        if let Some(user) = user
            && (status.is_success() || status.is_redirection())
        {
            // Before the answer leaves: the user's next request already finds the mark.
            ryw.remember(marks, user).await;
        }
        return response;
    }
    match user {
        Some(user) if ryw.wrote_lately(marks, user).await => {
            reading_primary(next.run(request)).await
        }
        _ => next.run(request).await,
    }
}
