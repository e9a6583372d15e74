//! Who follows whom, with the follower counters kept on both users' rows.

use async_trait::async_trait;
use onair_core::{Cursor, Limit, Page};
use uuid::Uuid;

use crate::error::StoreError;
use crate::postgres::PgStore;
use crate::sql::{Toggle, keyset_page};
use crate::sqlite::SqliteStore;
use crate::timestamp::Timestamp;

type Result<T> = std::result::Result<T, StoreError>;

#[async_trait]
pub trait FollowStore: Send + Sync {
    /// Returns whether a new follow was created (false when it already existed).
    /// `NotFound` when either user does not exist.
    async fn follow(&self, follower: Uuid, followed: Uuid) -> Result<bool>;
    /// Returns whether a follow was removed.
    async fn unfollow(&self, follower: Uuid, followed: Uuid) -> Result<bool>;
    async fn is_following(&self, follower: Uuid, followed: Uuid) -> Result<bool>;
    /// Who follows `user`, newest first.
    async fn followers(
        &self,
        user: Uuid,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<FollowEntry>>;
    /// Whom `user` follows, newest first.
    async fn following(
        &self,
        user: Uuid,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<FollowEntry>>;
}

/// How a user appears inside lists (followers, stream owners).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UserSummary {
    pub id: Uuid,
    pub username: String,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
}

/// One row of a followers or following list.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FollowEntry {
    #[sqlx(flatten)]
    pub user: UserSummary,
    pub followed_at: Timestamp,
}

impl FollowEntry {
    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.followed_at.get(), self.user.id)
    }
}

const FOLLOW: Toggle = Toggle {
    insert: "INSERT INTO follows (follower_id, following_id, created_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
    delete: "DELETE FROM follows WHERE follower_id = $1 AND following_id = $2",
};

/// `(list_of, other)`: `$1` is the user whose list it is; the joined user is the other
/// side of the follow.
pub(crate) const FOLLOWERS: (&str, &str) = ("following_id", "follower_id");
pub(crate) const FOLLOWING: (&str, &str) = ("follower_id", "following_id");

/// A page of a followers or following list ([`FOLLOWERS`], [`FOLLOWING`]).
pub(crate) fn follow_page((list_of, other): (&str, &str)) -> String {
    format!(
        "SELECT u.id, u.username, u.display_name, u.avatar_url, f.created_at AS followed_at
         FROM follows f JOIN users u ON u.id = f.{other}
         WHERE f.{list_of} = $1 AND (f.created_at, f.{other}) < ($2, $3)
         ORDER BY f.created_at DESC, f.{other} DESC
         LIMIT $4"
    )
}

macro_rules! impl_follow_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Follows (`on`) or unfollows, and moves both users' counters when that
            /// changed anything.
            async fn set_follow(&self, follower: Uuid, followed: Uuid, on: bool) -> Result<bool> {
                let mut tx = self.writer().begin().await?;
                let changed = FOLLOW.set(&mut *tx, (follower, followed), on).await?;
                if changed {
                    let delta = if on { 1 } else { -1 };
                    Self::count_follow(&mut tx, follower, followed, delta).await?;
                }
                tx.commit().await?;
                Ok(changed)
            }

            /// Moves both users' follow counters by `delta`, one row at a time in id order:
            /// every transaction then locks the two rows in the same order, so two users
            /// following each other at once cannot deadlock. (A single
            /// `UPDATE … WHERE id IN ($1, $2)` locks in scan order, which on PostgreSQL is
            /// heap order when the planner picks a sequential scan, and differs between
            /// transactions as rows get new versions: that deadlocked.)
            async fn count_follow(
                tx: &mut sqlx::Transaction<'_, $db>,
                follower: Uuid,
                followed: Uuid,
                delta: i64,
            ) -> Result<()> {
                // (user, change of follower_count, change of following_count)
                let mut changes = [(follower, 0, delta), (followed, delta, 0)];
                changes.sort_by_key(|(id, _, _)| *id);
                for (id, followers, following) in changes {
                    sqlx::query(
                        "UPDATE users SET follower_count = follower_count + $2,
                            following_count = following_count + $3
                         WHERE id = $1",
                    )
                    .bind(id)
                    .bind(followers)
                    .bind(following)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            }
        }

        #[async_trait]
        impl FollowStore for $store {
            async fn follow(&self, follower: Uuid, followed: Uuid) -> Result<bool> {
                self.set_follow(follower, followed, true).await
            }

            async fn unfollow(&self, follower: Uuid, followed: Uuid) -> Result<bool> {
                self.set_follow(follower, followed, false).await
            }

            async fn is_following(&self, follower: Uuid, followed: Uuid) -> Result<bool> {
                let found: Option<i32> = sqlx::query_scalar(
                    "SELECT 1 FROM follows WHERE follower_id = $1 AND following_id = $2",
                )
                .bind(follower)
                .bind(followed)
                .fetch_optional(&mut *self.reader().await?)
                .await?;
                Ok(found.is_some())
            }

            async fn followers(
                &self,
                user: Uuid,
                limit: Limit,
                after: Option<Cursor>,
            ) -> Result<Page<FollowEntry>> {
                let sql = follow_page(FOLLOWERS);
                keyset_page(
                    &mut *self.reader().await?,
                    sql,
                    user,
                    limit,
                    after,
                    FollowEntry::cursor,
                )
                .await
            }

            async fn following(
                &self,
                user: Uuid,
                limit: Limit,
                after: Option<Cursor>,
            ) -> Result<Page<FollowEntry>> {
                let sql = follow_page(FOLLOWING);
                keyset_page(
                    &mut *self.reader().await?,
                    sql,
                    user,
                    limit,
                    after,
                    FollowEntry::cursor,
                )
                .await
            }
        }
    };
}

impl_follow_store!(SqliteStore, sqlx::Sqlite);
impl_follow_store!(PgStore, sqlx::Postgres);
