//! Operators (issue 16): admins suspend and reinstate accounts, end any broadcast and
//! queue dead jobs again, through `/api/admin/…` or the `onair admin` command; both call
//! [`Admin`], and every action is recorded in the audit log with it (one transaction in
//! the store).
//!
//! A suspension marks the account, revokes its refresh tokens and ends its broadcast.
//! From then on it cannot log in, refresh, go live through the API or publish with its
//! stream key (`account_suspended`); an encoder publishing when it happens is cut at
//! once on this node and within the ingest's re-check (`still_live`, every few seconds)
//! on another. Access tokens are stateless JWTs: one the account already holds keeps
//! authorizing other requests until it expires (`auth.access_token_ttl_secs`), but no
//! new one is issued. Admin rights are read from the database on every admin request,
//! so a revoked or suspended admin loses them at once.

mod api;

pub use api::{AuditEntryDto, DeadJobDto, router};

use std::sync::Arc;

use onair_core::{Cursor, Email, Limit, Page, Password, Username, ValidationError};
use onair_store::jobs::DeadJob;
use onair_store::{
    Actor, AdminStore, AuditEntry, JobStore, NewUser, Store, StoreError, StreamStore, StreamView,
    Suspension, Timestamp, UserStore,
};
use uuid::Uuid;

use crate::accounts::PasswordHashing;
use crate::error::ApiError;
use crate::streams::Streams;

/// Longest reason an admin may give, in characters.
const MAX_REASON_CHARS: usize = 500;

/// What `onair admin create` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminCreated {
    Created(Uuid),
    /// The user existed and was made an admin.
    Promoted(Uuid),
    /// The user existed and was an admin already.
    AlreadyAdmin(Uuid),
}

/// The admin actions and what they read, for the API and the command line.
pub struct Admin {
    admin: Arc<dyn AdminStore>,
    users: Arc<dyn UserStore>,
    jobs: Arc<dyn JobStore>,
    streams: Arc<dyn StreamStore>,
    /// This node's broadcasts: what an end does here (cut the encoder, run the jobs,
    /// refresh the caches). `None` on the command line, which has no node: ingest nodes
    /// cut the encoder at their re-check, workers find the jobs at their next poll,
    /// cached pages expire with their TTL.
    live: Option<Arc<Streams>>,
}

impl Admin {
    pub fn new(store: Arc<dyn Store>, live: Option<Arc<Streams>>) -> Self {
        Self {
            admin: store.clone(),
            users: store.clone(),
            jobs: store.clone(),
            streams: store,
            live,
        }
    }

    /// The actor for `user`'s request: an admin whose account is not suspended, else
    /// `forbidden`.
    pub async fn authorize(&self, user: Uuid) -> Result<Actor, ApiError> {
        match self.admin.account_status(user).await? {
            Some(status) if status.is_admin && status.suspended_at.is_none() => {
                Ok(Actor::Admin(user))
            }
            _ => Err(ApiError::Forbidden("this needs an admin account")),
        }
    }

    /// The id of the user named `username` (the command line names users).
    pub async fn user_id(&self, username: &str) -> Result<Uuid, ApiError> {
        let username = Username::parse(username)?;
        self.users
            .profile_by_username(&username)
            .await?
            .map(|profile| profile.id)
            .ok_or(ApiError::NotFound("user"))
    }

    /// Creates admin `username`, or makes the existing user an admin (`email` and
    /// `password` are then not used). A new admin needs both.
    pub async fn create_admin(
        &self,
        actor: Actor,
        username: &str,
        email: Option<&str>,
        password: impl FnOnce() -> Result<String, ApiError>,
    ) -> Result<AdminCreated, ApiError> {
        match self.user_id(username).await {
            Ok(id) if self.set_admin(actor, id, true).await? => {
                return Ok(AdminCreated::Promoted(id));
            }
            Ok(id) => return Ok(AdminCreated::AlreadyAdmin(id)),
            Err(ApiError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let email = email.ok_or_else(|| {
            ValidationError::new("email", "a new admin account needs an email address")
        })?;
        let password = Password::parse(&password()?)?;
        let user = NewUser {
            id: Uuid::now_v7(),
            username: Username::parse(username)?,
            email: Email::parse(email)?,
            password_hash: PasswordHashing::new(1).hash(password).await?,
            created_at: Timestamp::now(),
        };
        let id = user.id;
        self.admin.create_admin(actor, user).await?;
        Ok(AdminCreated::Created(id))
    }

    /// Grants or revokes admin rights; false when the user already had them or not.
    pub async fn set_admin(&self, actor: Actor, user: Uuid, admin: bool) -> Result<bool, ApiError> {
        self.admin
            .set_admin(actor, user, admin)
            .await
            .map_err(user_error)
    }

    /// Suspends `user` (see the module's comment). An admin cannot suspend themselves:
    /// nobody would be left to undo it through the API.
    pub async fn suspend(
        &self,
        actor: Actor,
        user: Uuid,
        reason: Option<&str>,
    ) -> Result<Suspension, ApiError> {
        if actor == Actor::Admin(user) {
            return Err(ApiError::CannotSuspendSelf);
        }
        let suspension = self
            .admin
            .suspend_user(actor, user, checked_reason(reason)?)
            .await
            .map_err(user_error)?;
        if suspension.ended_stream.is_some() {
            self.ended(user).await;
        }
        Ok(suspension)
    }

    pub async fn unsuspend(&self, actor: Actor, user: Uuid) -> Result<(), ApiError> {
        self.admin
            .unsuspend_user(actor, user)
            .await
            .map_err(user_error)
    }

    /// Ends broadcast `stream` and cuts its encoder; `stream_not_live` when it has
    /// ended already.
    pub async fn end_broadcast(
        &self,
        actor: Actor,
        stream: Uuid,
        reason: Option<&str>,
    ) -> Result<StreamView, ApiError> {
        let reason = checked_reason(reason)?;
        let owner = match self.admin.end_broadcast(actor, stream, reason).await {
            Ok(owner) => owner,
            Err(StoreError::NotFound) => return Err(self.not_active(stream).await),
            Err(e) => return Err(e.into()),
        };
        self.ended(owner).await;
        self.streams
            .stream(stream)
            .await?
            .ok_or(ApiError::NotFound("stream"))
    }

    pub async fn dead_jobs(
        &self,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<DeadJob>, StoreError> {
        self.jobs.dead_jobs(limit, after).await
    }

    /// Queues dead job `job` again; `not_found` when there is no such dead job.
    pub async fn revive_job(&self, actor: Actor, job: Uuid) -> Result<(), ApiError> {
        if self.admin.revive_dead_job(actor, job).await? {
            Ok(())
        } else {
            Err(ApiError::NotFound("dead job"))
        }
    }

    pub async fn audit(
        &self,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<AuditEntry>, StoreError> {
        self.admin.audit_log(limit, after).await
    }

    async fn ended(&self, owner: Uuid) {
        if let Some(live) = &self.live {
            live.ended(owner).await;
        }
    }

    /// Why broadcast `stream` could not be ended: it does not exist, or is over.
    async fn not_active(&self, stream: Uuid) -> ApiError {
        match self.streams.stream(stream).await {
            Ok(Some(_)) => ApiError::StreamNotLive,
            Ok(None) => ApiError::NotFound("stream"),
            Err(e) => e.into(),
        }
    }
}

/// A store error about a user, with the user named in a 404.
fn user_error(err: StoreError) -> ApiError {
    match err {
        StoreError::NotFound => ApiError::NotFound("user"),
        other => other.into(),
    }
}

fn checked_reason(reason: Option<&str>) -> Result<Option<&str>, ValidationError> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.chars().count() > MAX_REASON_CHARS) {
        return Err(ValidationError::new(
            "reason",
            format!("at most {MAX_REASON_CHARS} characters"),
        ));
    }
    Ok(reason)
}
