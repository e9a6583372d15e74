//! Tips through Stripe: the tips viewers send, the append-only ledger of the money they
//! moved (a tip paid, a refund), and the Stripe events already applied. A tip's state
//! changes only by [`TipStore::apply_payment_event`], in one transaction that records
//! the event id, so a redelivered event changes nothing.

use async_trait::async_trait;
use onair_core::{Cursor, Limit, Page};
use uuid::Uuid;

use crate::error::StoreError;
use crate::models::StreamOwner;
use crate::postgres::PgStore;
use crate::sql::{keyset_page, row_by_id};
use crate::sqlite::SqliteStore;
use crate::timestamp::Timestamp;

type Result<T> = std::result::Result<T, StoreError>;

#[async_trait]
pub trait TipStore: Send + Sync {
    /// Inserts a pending tip, or finds the sender's tip with the same idempotency key
    /// (a retried request). `NotFound` when the channel does not exist.
    async fn insert_tip(&self, tip: NewTip) -> Result<TipInsert>;
    /// Records the PaymentIntent Stripe created for tip `id`.
    async fn set_payment_intent(&self, id: Uuid, payment_intent_id: &str) -> Result<()>;
    async fn tip(&self, id: Uuid) -> Result<Option<Tip>>;
    /// Applies a verified Stripe event once: its id is recorded with its effects.
    async fn apply_payment_event(&self, event: &PaymentEvent) -> Result<EventOutcome>;
    /// A channel's takings per currency, from the ledger.
    async fn earnings(&self, channel_id: Uuid) -> Result<Vec<Earnings>>;
    /// Tips a user received (paid ones) or sent (those that reached Stripe), newest first.
    async fn tips(
        &self,
        user_id: Uuid,
        direction: TipDirection,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<Tip>>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TipStatus {
    Pending,
    Succeeded,
    Failed,
    PartiallyRefunded,
    Refunded,
}

impl TipStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::PartiallyRefunded => "partially_refunded",
            Self::Refunded => "refunded",
        }
    }

    /// Whether the money arrived (refunded or not since).
    pub fn paid(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::PartiallyRefunded | Self::Refunded
        )
    }
}

impl TryFrom<String> for TipStatus {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Self, Self::Error> {
        [
            Self::Pending,
            Self::Succeeded,
            Self::Failed,
            Self::PartiallyRefunded,
            Self::Refunded,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
        .ok_or_else(|| format!("unknown tip status {s:?}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TipDirection {
    Received,
    Sent,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewTip {
    pub id: Uuid,
    pub sender_id: Uuid,
    pub channel_id: Uuid,
    pub amount: i64,
    pub currency: String,
    pub message: Option<String>,
    pub idempotency_key: String,
    pub request_digest: String,
}

/// What [`TipStore::insert_tip`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum TipInsert {
    Inserted(Tip),
    /// The sender already has a tip with this idempotency key.
    Existing(Tip),
}

/// The sender columns of a tip row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TipSender {
    #[sqlx(rename = "sender_id")]
    pub id: Uuid,
    #[sqlx(rename = "sender_username")]
    pub username: String,
    #[sqlx(rename = "sender_display_name")]
    pub display_name: Option<String>,
    #[sqlx(rename = "sender_avatar_url")]
    pub avatar_url: Option<String>,
}

/// A tip with its sender and channel joined in.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Tip {
    pub id: Uuid,
    pub amount: i64,
    pub currency: String,
    pub message: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: TipStatus,
    pub refunded_amount: i64,
    pub payment_intent_id: Option<String>,
    pub request_digest: String,
    pub created_at: Timestamp,
    #[sqlx(flatten)]
    pub sender: TipSender,
    /// The channel's owner, who receives it.
    #[sqlx(flatten)]
    pub channel: StreamOwner,
}

impl Tip {
    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.created_at.get(), self.id)
    }
}

/// A verified Stripe event about a tip's payment.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentEvent {
    /// Stripe's event id (`evt_…`): applied once.
    pub event_id: String,
    pub event_type: String,
    /// The tip named in the PaymentIntent's metadata, when the event carries it.
    pub tip_id: Option<Uuid>,
    pub payment_intent_id: String,
    pub currency: String,
    pub change: PaymentChange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentChange {
    Succeeded,
    Failed,
    /// A charge of the tip's payment, refunded by `total_refunded` so far (Stripe's
    /// `amount_refunded` is cumulative).
    Refunded {
        total_refunded: i64,
    },
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq)]
pub enum EventOutcome {
    /// This event id was applied before: nothing changed.
    Duplicate,
    /// No tip of ours has this payment (another product on the same Stripe account).
    UnknownTip,
    /// Applied (or, out of order, nothing left to do); `paid_now` when this event is the
    /// one that turned the tip into a paid one that stands (announce it).
    Applied { tip: Box<Tip>, paid_now: bool },
}

/// A channel's takings in one currency, in minor units.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Earnings {
    pub currency: String,
    pub succeeded: i64,
    pub refunded: i64,
    /// Paid tips, refunded or not.
    pub tips: i64,
}

const TIP_VIEW: &str = "
    SELECT t.id, t.amount, t.currency, t.message, t.status, t.refunded_amount,
           t.payment_intent_id, t.request_digest, t.created_at,
           s.id AS sender_id, s.username AS sender_username,
           s.display_name AS sender_display_name, s.avatar_url AS sender_avatar_url,
           c.id AS owner_id, c.username AS owner_username,
           c.display_name AS owner_display_name, c.avatar_url AS owner_avatar_url
    FROM tips t
    JOIN users s ON s.id = t.sender_id
    JOIN users c ON c.id = t.channel_id";

/// The state of a tip an event finds, locked for the event's transaction.
#[derive(sqlx::FromRow)]
struct Locked {
    id: Uuid,
    channel_id: Uuid,
    amount: i64,
    currency: String,
    #[sqlx(try_from = "String")]
    status: TipStatus,
    refunded_amount: i64,
    payment_intent_id: Option<String>,
}

/// Where an event leaves a tip: its new status, the ledger entries to append, and
/// whether it is newly paid.
#[derive(Debug, PartialEq, Eq)]
struct Transition {
    status: TipStatus,
    paid: Option<i64>,
    refund: Option<i64>,
    refunded_amount: i64,
}

/// The state machine: a payment that failed may still succeed (the viewer tried another
/// card), a failure after success changes nothing, a refund applies to a paid tip (and
/// proves it was paid when it overtakes the success event), refunds never exceed the
/// tip. `None`: nothing to do.
fn transition(
    status: TipStatus,
    amount: i64,
    refunded: i64,
    change: PaymentChange,
) -> Option<Transition> {
    match change {
        PaymentChange::Succeeded => (!status.paid()).then_some(Transition {
            status: TipStatus::Succeeded,
            paid: Some(amount),
            refund: None,
            refunded_amount: refunded,
        }),
        PaymentChange::Failed => (status == TipStatus::Pending).then_some(Transition {
            status: TipStatus::Failed,
            paid: None,
            refund: None,
            refunded_amount: refunded,
        }),
        PaymentChange::Refunded { total_refunded } => {
            let total = total_refunded.clamp(0, amount);
            let paid = (!status.paid()).then_some(amount);
            let refund = (total > refunded).then_some(total - refunded);
            if paid.is_none() && refund.is_none() {
                return None;
            }
            let status = match total {
                0 => TipStatus::Succeeded,
                t if t >= amount => TipStatus::Refunded,
                _ => TipStatus::PartiallyRefunded,
            };
            Some(Transition {
                status,
                paid,
                refund,
                refunded_amount: total.max(refunded),
            })
        }
    }
}

/// `$lock`: how the event's transaction holds the tip against a concurrent event.
macro_rules! impl_tip_store {
    ($store:ty, lock = $lock:literal) => {
        #[async_trait]
        impl TipStore for $store {
            async fn insert_tip(&self, tip: NewTip) -> Result<TipInsert> {
                let now = Timestamp::now();
                let inserted = sqlx::query(
                    "INSERT INTO tips (id, sender_id, channel_id, amount, currency, message, status,
                                       idempotency_key, request_digest, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $9)
                     ON CONFLICT (sender_id, idempotency_key) DO NOTHING",
                )
                .bind(tip.id)
                .bind(tip.sender_id)
                .bind(tip.channel_id)
                .bind(tip.amount)
                .bind(&tip.currency)
                .bind(&tip.message)
                .bind(&tip.idempotency_key)
                .bind(&tip.request_digest)
                .bind(now)
                .execute(self.writer())
                .await?;
                if inserted.rows_affected() == 1 {
                    let created = row_by_id(self.writer(), TIP_VIEW, "t", tip.id).await?;
                    return created.map(TipInsert::Inserted).ok_or(StoreError::NotFound);
                }
                let existing: Tip = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{TIP_VIEW} WHERE t.sender_id = $1 AND t.idempotency_key = $2"
                )))
                .bind(tip.sender_id)
                .bind(&tip.idempotency_key)
                .fetch_one(self.writer())
                .await?;
                Ok(TipInsert::Existing(existing))
            }

            async fn set_payment_intent(&self, id: Uuid, payment_intent_id: &str) -> Result<()> {
                sqlx::query(
                    "UPDATE tips SET payment_intent_id = $2, updated_at = $3
                     WHERE id = $1 AND payment_intent_id IS NULL",
                )
                .bind(id)
                .bind(payment_intent_id)
                .bind(Timestamp::now())
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn tip(&self, id: Uuid) -> Result<Option<Tip>> {
                row_by_id(self.writer(), TIP_VIEW, "t", id).await
            }

            async fn apply_payment_event(&self, event: &PaymentEvent) -> Result<EventOutcome> {
                let now = Timestamp::now();
                let mut tx = self.writer().begin().await?;
                let first = sqlx::query(
                    "INSERT INTO stripe_events (id, type, received_at) VALUES ($1, $2, $3)
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(&event.event_id)
                .bind(&event.event_type)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if first.rows_affected() == 0 {
                    return Ok(EventOutcome::Duplicate);
                }
                let found: Option<Locked> = sqlx::query_as(concat!(
                    "SELECT id, channel_id, amount, currency, status, refunded_amount,
                            payment_intent_id
                     FROM tips WHERE id = $1 OR payment_intent_id = $2 ",
                    $lock
                ))
                .bind(event.tip_id.unwrap_or(Uuid::nil()))
                .bind(&event.payment_intent_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(tip) = found.filter(|t| {
                    t.currency == event.currency
                        && t.payment_intent_id.as_deref().is_none_or(|p| p == event.payment_intent_id)
                }) else {
                    tx.commit().await?;
                    return Ok(EventOutcome::UnknownTip);
                };
                let change = transition(tip.status, tip.amount, tip.refunded_amount, event.change);
                if let Some(change) = &change {
                    sqlx::query(
                        "UPDATE tips SET status = $2, refunded_amount = $3, updated_at = $4,
                                payment_intent_id = COALESCE(payment_intent_id, $5)
                         WHERE id = $1",
                    )
                    .bind(tip.id)
                    .bind(change.status.as_str())
                    .bind(change.refunded_amount)
                    .bind(now)
                    .bind(&event.payment_intent_id)
                    .execute(&mut *tx)
                    .await?;
                    let entries = [("tip", change.paid), ("refund", change.refund)];
                    for (kind, amount) in entries.into_iter().filter_map(|(k, a)| Some((k, a?))) {
                        sqlx::query(
                            "INSERT INTO tip_ledger (id, tip_id, channel_id, kind, amount, currency,
                                                     stripe_event_id, created_at)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        )
                        .bind(Uuid::now_v7())
                        .bind(tip.id)
                        .bind(tip.channel_id)
                        .bind(kind)
                        .bind(amount)
                        .bind(&tip.currency)
                        .bind(&event.event_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                let after: Tip = row_by_id(&mut *tx, TIP_VIEW, "t", tip.id)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                tx.commit().await?;
                let paid_now = change.is_some_and(|c| c.paid.is_some())
                    && after.status == TipStatus::Succeeded;
                Ok(EventOutcome::Applied {
                    tip: Box::new(after),
                    paid_now,
                })
            }

            async fn earnings(&self, channel_id: Uuid) -> Result<Vec<Earnings>> {
                let rows = sqlx::query_as(
                    "SELECT currency,
                            CAST(SUM(CASE WHEN kind = 'tip' THEN amount ELSE 0 END) AS BIGINT)
                                AS succeeded,
                            CAST(SUM(CASE WHEN kind = 'refund' THEN amount ELSE 0 END) AS BIGINT)
                                AS refunded,
                            COUNT(CASE WHEN kind = 'tip' THEN 1 END) AS tips
                     FROM tip_ledger WHERE channel_id = $1
                     GROUP BY currency ORDER BY currency",
                )
                .bind(channel_id)
                .fetch_all(&mut *self.reader().await?)
                .await?;
                Ok(rows)
            }

            async fn tips(
                &self,
                user_id: Uuid,
                direction: TipDirection,
                limit: Limit,
                after: Option<Cursor>,
            ) -> Result<Page<Tip>> {
                // Each filter is its partial index's predicate.
                let filter = match direction {
                    TipDirection::Received => {
                        "t.channel_id = $1
                         AND t.status IN ('succeeded', 'partially_refunded', 'refunded')"
                    }
                    TipDirection::Sent => "t.sender_id = $1 AND t.payment_intent_id IS NOT NULL",
                };
                let sql = format!(
                    "{TIP_VIEW} WHERE {filter} AND (t.created_at, t.id) < ($2, $3)
                     ORDER BY t.created_at DESC, t.id DESC LIMIT $4"
                );
                keyset_page(&mut *self.reader().await?, sql, user_id, limit, after, Tip::cursor).await
            }
        }
    };
}

impl_tip_store!(SqliteStore, lock = "");
impl_tip_store!(PgStore, lock = "FOR UPDATE OF tips");

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(status: TipStatus, refunded: i64, change: PaymentChange) -> Option<Transition> {
        transition(status, 500, refunded, change)
    }

    #[test]
    fn success_pays_once_and_failure_never_undoes_it() {
        let paid = apply(TipStatus::Pending, 0, PaymentChange::Succeeded).unwrap();
        assert_eq!((paid.status, paid.paid), (TipStatus::Succeeded, Some(500)));
        assert!(apply(TipStatus::Succeeded, 0, PaymentChange::Succeeded).is_none());
        assert!(apply(TipStatus::Succeeded, 0, PaymentChange::Failed).is_none());
        let retried = apply(TipStatus::Failed, 0, PaymentChange::Succeeded).unwrap();
        assert_eq!(retried.status, TipStatus::Succeeded);
        let failed = apply(TipStatus::Pending, 0, PaymentChange::Failed).unwrap();
        assert_eq!((failed.status, failed.paid), (TipStatus::Failed, None));
    }

    #[test]
    fn refunds_are_cumulative_bounded_and_may_overtake_the_success() {
        let refund = |total| PaymentChange::Refunded {
            total_refunded: total,
        };
        let part = apply(TipStatus::Succeeded, 0, refund(200)).unwrap();
        assert_eq!(
            (part.status, part.refund, part.refunded_amount),
            (TipStatus::PartiallyRefunded, Some(200), 200)
        );
        let rest = apply(TipStatus::PartiallyRefunded, 200, refund(900)).unwrap();
        assert_eq!(
            (rest.status, rest.refund, rest.refunded_amount),
            (TipStatus::Refunded, Some(300), 500)
        );
        assert!(apply(TipStatus::Refunded, 500, refund(500)).is_none());
        assert!(apply(TipStatus::PartiallyRefunded, 200, refund(100)).is_none());
        let early = apply(TipStatus::Pending, 0, refund(500)).unwrap();
        assert_eq!(
            (early.status, early.paid, early.refund),
            (TipStatus::Refunded, Some(500), Some(500))
        );
        assert!(apply(TipStatus::Refunded, 500, PaymentChange::Succeeded).is_none());
    }
}
