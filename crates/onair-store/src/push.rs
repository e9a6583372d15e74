//! Web Push: browsers' subscriptions, and who among a fan-out batch gets a push.

use async_trait::async_trait;
use uuid::Uuid;

use crate::error::{Conflict, StoreError};
use crate::jobs::PushBatchJob;
use crate::notifications::{FANOUT_RANGE, fanout_bounds};
use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;
use crate::timestamp::Timestamp;
use crate::users::lock_user;

type Result<T> = std::result::Result<T, StoreError>;

#[async_trait]
pub trait PushStore: Send + Sync {
    /// Subscribes a browser, or replaces the keys of the user's own subscription of that
    /// endpoint. `None` when the user already has `max_per_user` other subscriptions;
    /// `Conflict::PushEndpoint` when another user has the endpoint (it is never moved:
    /// whoever knows an endpoint could otherwise take someone's notifications over).
    async fn add_push_subscription(
        &self,
        sub: NewPushSubscription,
        max_per_user: i64,
    ) -> Result<Option<PushSubscription>>;
    /// Returns whether the user had that endpoint.
    async fn remove_push_subscription(&self, user: Uuid, endpoint: &str) -> Result<bool>;
    async fn push_subscription(&self, id: Uuid) -> Result<Option<PushSubscription>>;
    /// The push service said the subscription is gone (404/410).
    async fn delete_push_subscription(&self, id: Uuid) -> Result<()>;
    /// Subscriptions of the batch's followers who still want push from this creator.
    async fn push_targets(&self, batch: &PushBatchJob) -> Result<Vec<PushSubscription>>;
}

#[derive(Debug, Clone)]
pub struct NewPushSubscription {
    pub id: Uuid,
    pub user_id: Uuid,
    pub endpoint: String,
    /// The browser's P-256 public key and auth secret, base64url as the browser gives them.
    pub p256dh: String,
    pub auth: String,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PushSubscription {
    pub id: Uuid,
    pub user_id: Uuid,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    pub created_at: Timestamp,
}

const PUSH_COLUMNS: &str = "id, user_id, endpoint, p256dh, auth, created_at";

macro_rules! impl_push_store {
    ($store:ty) => {
        #[async_trait]
        impl PushStore for $store {
            async fn add_push_subscription(
                &self,
                sub: NewPushSubscription,
                max_per_user: i64,
            ) -> Result<Option<PushSubscription>> {
                let mut tx = self.writer().begin().await?;
                lock_user(&mut *tx, sub.user_id).await?;
                let renewed = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "UPDATE push_subscriptions SET p256dh = $3, auth = $4
                     WHERE endpoint = $1 AND user_id = $2
                     RETURNING {PUSH_COLUMNS}"
                )))
                .bind(&sub.endpoint)
                .bind(sub.user_id)
                .bind(&sub.p256dh)
                .bind(&sub.auth)
                .fetch_optional(&mut *tx)
                .await?;
                let saved = match renewed {
                    Some(renewed) => Some(renewed),
                    None => sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO push_subscriptions (id, user_id, endpoint, p256dh, auth, created_at)
                         SELECT $1, $2, $3, $4, $5, $6
                         WHERE (SELECT COUNT(*) FROM push_subscriptions WHERE user_id = $2) < $7
                         ON CONFLICT (endpoint) DO NOTHING
                         RETURNING {PUSH_COLUMNS}"
                    )))
                    .bind(sub.id)
                    .bind(sub.user_id)
                    .bind(&sub.endpoint)
                    .bind(&sub.p256dh)
                    .bind(&sub.auth)
                    .bind(Timestamp::now())
                    .bind(max_per_user)
                    .fetch_optional(&mut *tx)
                    .await?,
                };
                if saved.is_none() {
                    let taken: bool = sqlx::query_scalar(
                        "SELECT EXISTS (SELECT 1 FROM push_subscriptions WHERE endpoint = $1)",
                    )
                    .bind(&sub.endpoint)
                    .fetch_one(&mut *tx)
                    .await?;
                    if taken {
                        return Err(StoreError::Conflict(Conflict::PushEndpoint));
                    }
                }
                tx.commit().await?;
                Ok(saved)
            }

            async fn remove_push_subscription(&self, user: Uuid, endpoint: &str) -> Result<bool> {
                let removed = sqlx::query(
                    "DELETE FROM push_subscriptions WHERE user_id = $1 AND endpoint = $2",
                )
                .bind(user)
                .bind(endpoint)
                .execute(self.writer())
                .await?;
                Ok(removed.rows_affected() == 1)
            }

            async fn push_subscription(&self, id: Uuid) -> Result<Option<PushSubscription>> {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {PUSH_COLUMNS} FROM push_subscriptions WHERE id = $1"
                )))
                .bind(id)
                .fetch_optional(self.writer())
                .await
                .map_err(Into::into)
            }

            async fn delete_push_subscription(&self, id: Uuid) -> Result<()> {
                sqlx::query("DELETE FROM push_subscriptions WHERE id = $1")
                    .bind(id)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn push_targets(&self, batch: &PushBatchJob) -> Result<Vec<PushSubscription>> {
                let (from, to) = fanout_bounds(batch.after, Some(batch.upto));
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT p.id, p.user_id, p.endpoint, p.p256dh, p.auth, p.created_at
                     FROM follows f
                     JOIN users u ON u.id = f.follower_id
                     JOIN push_subscriptions p ON p.user_id = f.follower_id
                     WHERE {FANOUT_RANGE} AND u.push_enabled"
                )))
                .bind(batch.creator_id)
                .bind(from)
                .bind(to)
                .fetch_all(self.writer())
                .await
                .map_err(Into::into)
            }
        }
    };
}

impl_push_store!(SqliteStore);
impl_push_store!(PgStore);
