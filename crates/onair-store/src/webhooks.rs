//! Outbound webhooks: a channel owner's callbacks for its broadcasts going online and
//! offline, and their delivery jobs ([`enqueue_deliveries`], called by `streams`).

use async_trait::async_trait;
use onair_core::{Cursor, Limit, Page};
use sqlx::{Executor, Transaction};
use uuid::Uuid;

use crate::error::StoreError;
use crate::jobs::{self, NewJob, WebhookJob, kinds};
use crate::postgres::PgStore;
use crate::sql::{Bind, Db, Row, keyset_page};
use crate::sqlite::SqliteStore;
use crate::timestamp::Timestamp;
use crate::users::lock_user;

type Result<T> = std::result::Result<T, StoreError>;

#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// `None` when the owner already has `max_per_owner` webhooks (a cap against abuse:
    /// each webhook is a delivery per event). `NotFound` for an unknown channel.
    async fn create_webhook(&self, hook: NewWebhook, max_per_owner: i64)
    -> Result<Option<Webhook>>;
    async fn webhook(&self, id: Uuid) -> Result<Option<Webhook>>;
    /// The owner's webhooks, newest first.
    async fn webhooks(
        &self,
        owner: Uuid,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<Webhook>>;
    /// Returns whether the owner had it.
    async fn delete_webhook(&self, owner: Uuid, id: Uuid) -> Result<bool>;
    /// Counts a delivery's outcome. Failures in a row reaching `disable_after` disable
    /// the webhook; returns whether it is disabled now.
    async fn record_webhook_delivery(&self, id: Uuid, ok: bool, disable_after: i32)
    -> Result<bool>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookEvent {
    StreamOnline,
    StreamOffline,
}

impl WebhookEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StreamOnline => "stream.online",
            Self::StreamOffline => "stream.offline",
        }
    }
}

impl TryFrom<String> for WebhookEvent {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Self, Self::Error> {
        match s.as_str() {
            "stream.online" => Ok(Self::StreamOnline),
            "stream.offline" => Ok(Self::StreamOffline),
            _ => Err(format!("unknown webhook event {s:?}")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub channel_id: Uuid,
    pub event: WebhookEvent,
    pub callback_url: String,
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Webhook {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub channel_id: Uuid,
    #[sqlx(try_from = "String")]
    pub event: WebhookEvent,
    pub callback_url: String,
    pub secret: String,
    /// Failed deliveries in a row.
    pub failures: i32,
    pub disabled_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl Webhook {
    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.created_at.get(), self.id)
    }
}

const WEBHOOK_COLUMNS: &str =
    "id, owner_id, channel_id, event, callback_url, secret, failures, disabled_at, created_at";

/// Enqueues one delivery job per enabled webhook of `channel_id` for `event` of broadcast
/// `stream_id`, in the transaction of the change that is the event.
pub(crate) async fn enqueue_deliveries<DB: Db>(
    tx: &mut Transaction<'_, DB>,
    channel_id: Uuid,
    stream_id: Uuid,
    event: WebhookEvent,
    at: Timestamp,
) -> Result<()>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    (Uuid,): Row<DB>,
    Uuid: Bind<DB>,
    Timestamp: Bind<DB>,
    Option<String>: Bind<DB>,
    for<'s> &'s str: Bind<DB>,
{
    let hooks: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM webhooks WHERE channel_id = $1 AND event = $2 AND disabled_at IS NULL",
    )
    .bind(channel_id)
    .bind(event.as_str())
    .fetch_all(&mut **tx)
    .await?;
    for webhook_id in hooks {
        let job = WebhookJob {
            webhook_id,
            stream_id,
            event: event.as_str().to_owned(),
            occurred_at: at.get(),
        };
        jobs::enqueue(&mut **tx, &NewJob::now(kinds::WEBHOOK, &job)).await?;
    }
    Ok(())
}

macro_rules! impl_webhook_store {
    ($store:ty) => {
        #[async_trait]
        impl WebhookStore for $store {
            async fn create_webhook(
                &self,
                hook: NewWebhook,
                max_per_owner: i64,
            ) -> Result<Option<Webhook>> {
                let mut tx = self.writer().begin().await?;
                lock_user(&mut *tx, hook.owner_id).await?;
                let created = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO webhooks (id, owner_id, channel_id, event, callback_url, secret, created_at)
                     SELECT $1, $2, $3, $4, $5, $6, $7
                     WHERE (SELECT COUNT(*) FROM webhooks WHERE owner_id = $2) < $8
                     RETURNING {WEBHOOK_COLUMNS}"
                )))
                .bind(hook.id)
                .bind(hook.owner_id)
                .bind(hook.channel_id)
                .bind(hook.event.as_str())
                .bind(&hook.callback_url)
                .bind(&hook.secret)
                .bind(Timestamp::now())
                .bind(max_per_owner)
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(created)
            }

            async fn webhook(&self, id: Uuid) -> Result<Option<Webhook>> {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1"
                )))
                .bind(id)
                .fetch_optional(self.writer())
                .await
                .map_err(Into::into)
            }

            async fn webhooks(
                &self,
                owner: Uuid,
                limit: Limit,
                after: Option<Cursor>,
            ) -> Result<Page<Webhook>> {
                let sql = format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhooks
                     WHERE owner_id = $1 AND (created_at, id) < ($2, $3)
                     ORDER BY created_at DESC, id DESC LIMIT $4"
                );
                keyset_page(&mut *self.reader().await?, sql, owner, limit, after, Webhook::cursor).await
            }

            async fn delete_webhook(&self, owner: Uuid, id: Uuid) -> Result<bool> {
                let deleted = sqlx::query("DELETE FROM webhooks WHERE id = $1 AND owner_id = $2")
                    .bind(id)
                    .bind(owner)
                    .execute(self.writer())
                    .await?;
                Ok(deleted.rows_affected() == 1)
            }

            async fn record_webhook_delivery(
                &self,
                id: Uuid,
                ok: bool,
                disable_after: i32,
            ) -> Result<bool> {
                let disabled_at: Option<Option<Timestamp>> = sqlx::query_scalar(
                    "UPDATE webhooks
                     SET failures = CASE WHEN $2 THEN 0 ELSE failures + 1 END,
                         disabled_at = CASE
                             WHEN disabled_at IS NULL AND NOT $2 AND failures + 1 >= $3 THEN $4
                             ELSE disabled_at END
                     WHERE id = $1
                     RETURNING disabled_at",
                )
                .bind(id)
                .bind(ok)
                .bind(disable_after)
                .bind(Timestamp::now())
                .fetch_optional(self.writer())
                .await?;
                Ok(matches!(disabled_at, Some(Some(_))))
            }
        }
    };
}

impl_webhook_store!(SqliteStore);
impl_webhook_store!(PgStore);
