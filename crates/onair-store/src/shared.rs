//! The SQL both backends accept, written once. SQLite understands PostgreSQL's `$N`
//! placeholders, row-value comparisons, `ON CONFLICT` and `RETURNING`, and `Timestamp` /
//! `Uuid` encode natively on each side, so every query here runs unchanged on both. The
//! macro instantiates the domain traits for a backend type that provides `writer()` and
//! `reader()` pools; backend-specific concerns (pools, migrations, pragmas, replicas)
//! stay in `sqlite.rs` and `postgres.rs`.

use onair_core::Cursor;
use uuid::Uuid;

use crate::Timestamp;

/// Keyset start: the cursor's sort key, or past the newest row for the first page.
pub(crate) fn keyset(after: Option<Cursor>) -> (Timestamp, Uuid) {
    match after {
        Some(cursor) => (Timestamp::from(cursor.at), cursor.id),
        None => (Timestamp::max(), Uuid::max()),
    }
}

pub(crate) const PROFILE: &str = "
    SELECT u.id, u.username, u.display_name, u.bio, u.avatar_url,
           u.follower_count, u.following_count, s.id AS live_stream_id, u.created_at
    FROM users u
    LEFT JOIN streams s ON s.user_id = u.id AND s.status IN ('live', 'offline')
    WHERE u.id = $1";

pub(crate) const STREAM_VIEW: &str = "
    SELECT s.id, s.title, s.category, s.status, s.started_at, s.ended_at,
           s.viewer_count, s.peak_viewer_count, s.unique_viewer_count,
           u.id AS owner_id, u.username AS owner_username,
           u.display_name AS owner_display_name, u.avatar_url AS owner_avatar_url
    FROM streams s JOIN users u ON u.id = s.user_id";

pub(crate) const ARCHIVE_VIEW: &str = "
    SELECT a.id, a.stream_id, s.title, a.status, a.duration_ms, a.playlist_path, a.created_at,
           u.id AS owner_id, u.username AS owner_username,
           u.display_name AS owner_display_name, u.avatar_url AS owner_avatar_url
    FROM archives a
    JOIN streams s ON s.id = a.stream_id
    JOIN users u ON u.id = a.user_id";

/// `$1` is the user whose list it is; the joined user is the other side of the follow.
pub(crate) fn follow_page((list_of, other): (&str, &str)) -> String {
    format!(
        "SELECT u.id, u.username, u.display_name, u.avatar_url, f.created_at AS followed_at
         FROM follows f JOIN users u ON u.id = f.{other}
         WHERE f.{list_of} = $1 AND (f.created_at, f.{other}) < ($2, $3)
         ORDER BY f.created_at DESC, f.{other} DESC
         LIMIT $4"
    )
}

/// A page of broadcasts: `$1` is the filter's value, `$2`/`$3` the keyset, `$4` the limit.
pub(crate) fn stream_page(filter: &str) -> String {
    format!(
        "{STREAM_VIEW} WHERE {filter} AND (s.started_at, s.id) < ($2, $3)
         ORDER BY s.started_at DESC, s.id DESC LIMIT $4"
    )
}

/// A page of ready archives: `$1` is the filter's value, `$2`/`$3` the keyset, `$4` the limit.
pub(crate) fn archive_page(filter: &str) -> String {
    format!(
        "{ARCHIVE_VIEW} WHERE a.status = 'ready' AND {filter} AND (a.created_at, a.id) < ($2, $3)
         ORDER BY a.created_at DESC, a.id DESC LIMIT $4"
    )
}

pub(crate) const LIVE_LIST_FILTER: &str = "s.status = $1";
pub(crate) const FOLLOWERS: (&str, &str) = ("following_id", "follower_id");
pub(crate) const FOLLOWING: (&str, &str) = ("follower_id", "following_id");

macro_rules! impl_store_traits {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::traits::UserStore for $store {
            async fn create_user(
                &self,
                user: $crate::NewUser,
            ) -> Result<$crate::UserProfile, $crate::StoreError> {
                sqlx::query(
                    "INSERT INTO users (id, username, email, password_hash, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $5)",
                )
                .bind(user.id)
                .bind(user.username.as_str())
                .bind(user.email.as_str())
                .bind(&user.password_hash)
                .bind(user.created_at)
                .execute(self.writer())
                .await?;
                sqlx::query_as($crate::shared::PROFILE)
                    .bind(user.id)
                    .fetch_one(self.writer())
                    .await
                    .map_err(Into::into)
            }

            async fn create_user_with_session(
                &self,
                user: $crate::NewUser,
                refresh_token_hash: &[u8],
                expires_at: $crate::Timestamp,
            ) -> Result<$crate::UserProfile, $crate::StoreError> {
                let mut tx = self.writer().begin().await?;
                sqlx::query(
                    "INSERT INTO users (id, username, email, password_hash, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $5)",
                )
                .bind(user.id)
                .bind(user.username.as_str())
                .bind(user.email.as_str())
                .bind(&user.password_hash)
                .bind(user.created_at)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at, created_at)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(refresh_token_hash)
                .bind(uuid::Uuid::now_v7())
                .bind(user.id)
                .bind(expires_at)
                .bind($crate::Timestamp::now())
                .execute(&mut *tx)
                .await?;
                let profile = sqlx::query_as($crate::shared::PROFILE)
                    .bind(user.id)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(profile)
            }

            async fn credentials(
                &self,
                login: &str,
            ) -> Result<Option<$crate::Credentials>, $crate::StoreError> {
                sqlx::query_as("SELECT id, password_hash FROM users WHERE username = $1 OR email = $1")
                    .bind(login)
                    .fetch_optional(self.writer())
                    .await
                    .map_err(Into::into)
            }

            async fn profile(
                &self,
                id: uuid::Uuid,
            ) -> Result<Option<$crate::UserProfile>, $crate::StoreError> {
                sqlx::query_as($crate::shared::PROFILE)
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(Into::into)
            }

            async fn update_profile(
                &self,
                id: uuid::Uuid,
                patch: $crate::ProfilePatch,
            ) -> Result<$crate::UserProfile, $crate::StoreError> {
                let display_name = patch.display_name.as_ref().map(|d| d.as_ref().map(|d| d.as_str()));
                let avatar_url = patch.avatar_url.as_ref().map(|a| a.as_ref().map(|a| a.as_str()));
                let updated = sqlx::query(
                    "UPDATE users SET
                        display_name = CASE WHEN $2 THEN $3 ELSE display_name END,
                        bio = COALESCE($4, bio),
                        avatar_url = CASE WHEN $5 THEN $6 ELSE avatar_url END,
                        updated_at = $7
                     WHERE id = $1",
                )
                .bind(id)
                .bind(display_name.is_some())
                .bind(display_name.flatten())
                .bind(patch.bio.as_ref().map(|b| b.as_str()))
                .bind(avatar_url.is_some())
                .bind(avatar_url.flatten())
                .bind($crate::Timestamp::now())
                .execute(self.writer())
                .await?;
                if updated.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                sqlx::query_as($crate::shared::PROFILE)
                    .bind(id)
                    .fetch_one(self.writer())
                    .await
                    .map_err(Into::into)
            }
        }

        #[async_trait::async_trait]
        impl $crate::traits::SessionStore for $store {
            async fn insert_refresh_token(
                &self,
                user_id: uuid::Uuid,
                token_hash: &[u8],
                expires_at: $crate::Timestamp,
            ) -> Result<(), $crate::StoreError> {
                sqlx::query(
                    "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at, created_at)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(token_hash)
                .bind(uuid::Uuid::now_v7())
                .bind(user_id)
                .bind(expires_at)
                .bind($crate::Timestamp::now())
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn rotate_refresh_token(
                &self,
                presented: &[u8],
                replacement: &[u8],
                expires_at: $crate::Timestamp,
            ) -> Result<$crate::RefreshRotation, $crate::StoreError> {
                let now = $crate::Timestamp::now();
                let mut tx = self.writer().begin().await?;
                let spent: Option<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
                    "UPDATE refresh_tokens SET used_at = $2
                     WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2
                     RETURNING user_id, family_id",
                )
                .bind(presented)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some((user_id, family_id)) = spent {
                    sqlx::query(
                        "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at, created_at)
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(replacement)
                    .bind(family_id)
                    .bind(user_id)
                    .bind(expires_at)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    return Ok($crate::RefreshRotation::Rotated { user_id });
                }
                let replayed: Option<uuid::Uuid> = sqlx::query_scalar(
                    "SELECT family_id FROM refresh_tokens
                     WHERE token_hash = $1 AND (used_at IS NOT NULL OR revoked_at IS NOT NULL)",
                )
                .bind(presented)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(family_id) = replayed else {
                    return Ok($crate::RefreshRotation::Invalid);
                };
                sqlx::query("UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL")
                    .bind(family_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok($crate::RefreshRotation::Reused)
            }

            async fn revoke_refresh_family(&self, token_hash: &[u8]) -> Result<(), $crate::StoreError> {
                sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $2
                     WHERE revoked_at IS NULL
                       AND family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)",
                )
                .bind(token_hash)
                .bind($crate::Timestamp::now())
                .execute(self.writer())
                .await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::traits::FollowStore for $store {
            async fn follow(&self, follower: uuid::Uuid, followed: uuid::Uuid) -> Result<bool, $crate::StoreError> {
                let mut tx = self.writer().begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO follows (follower_id, following_id, created_at) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                )
                .bind(follower)
                .bind(followed)
                .bind($crate::Timestamp::now())
                .execute(&mut *tx)
                .await?
                .rows_affected() == 1;
                if inserted {
                    Self::count_follow(&mut tx, follower, followed, 1).await?;
                }
                tx.commit().await?;
                Ok(inserted)
            }

            async fn unfollow(&self, follower: uuid::Uuid, followed: uuid::Uuid) -> Result<bool, $crate::StoreError> {
                let mut tx = self.writer().begin().await?;
                let deleted = sqlx::query("DELETE FROM follows WHERE follower_id = $1 AND following_id = $2")
                    .bind(follower)
                    .bind(followed)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected() == 1;
                if deleted {
                    Self::count_follow(&mut tx, follower, followed, -1).await?;
                }
                tx.commit().await?;
                Ok(deleted)
            }

            async fn is_following(&self, follower: uuid::Uuid, followed: uuid::Uuid) -> Result<bool, $crate::StoreError> {
                let found: Option<i32> = sqlx::query_scalar(
                    "SELECT 1 FROM follows WHERE follower_id = $1 AND following_id = $2",
                )
                .bind(follower)
                .bind(followed)
                .fetch_optional(self.reader())
                .await?;
                Ok(found.is_some())
            }

            async fn followers(
                &self,
                user: uuid::Uuid,
                limit: onair_core::Limit,
                after: Option<onair_core::Cursor>,
            ) -> Result<onair_core::Page<$crate::FollowEntry>, $crate::StoreError> {
                self.keyset_page($crate::shared::follow_page($crate::shared::FOLLOWERS), user, limit, after, $crate::FollowEntry::cursor).await
            }

            async fn following(
                &self,
                user: uuid::Uuid,
                limit: onair_core::Limit,
                after: Option<onair_core::Cursor>,
            ) -> Result<onair_core::Page<$crate::FollowEntry>, $crate::StoreError> {
                self.keyset_page($crate::shared::follow_page($crate::shared::FOLLOWING), user, limit, after, $crate::FollowEntry::cursor).await
            }
        }

        impl $store {
            /// Moves both users' follow counters by `delta`, one row at a time in id order:
            /// every transaction then locks the two rows in the same order, so two users
            /// following each other at once cannot deadlock. (A single
            /// `UPDATE … WHERE id IN ($1, $2)` locks in scan order, which on PostgreSQL is
            /// heap order when the planner picks a sequential scan, and differs between
            /// transactions as rows get new versions: that deadlocked.)
            async fn count_follow(
                tx: &mut sqlx::Transaction<'_, $db>,
                follower: uuid::Uuid,
                followed: uuid::Uuid,
                delta: i64,
            ) -> Result<(), $crate::StoreError> {
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

            /// One page of a list ordered by (timestamp, id) descending: `sql` takes the
            /// filter value as `$1`, the keyset as `$2`/`$3` and the row count as `$4`.
            async fn keyset_page<T>(
                &self,
                sql: String,
                filter: impl for<'q> sqlx::Encode<'q, $db> + sqlx::Type<$db> + Send + 'static,
                limit: onair_core::Limit,
                after: Option<onair_core::Cursor>,
                cursor_of: fn(&T) -> onair_core::Cursor,
            ) -> Result<onair_core::Page<T>, $crate::StoreError>
            where
                T: for<'r> sqlx::FromRow<'r, <$db as sqlx::Database>::Row> + Send + Unpin,
            {
                let (at, id) = $crate::shared::keyset(after);
                let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(filter)
                    .bind(at)
                    .bind(id)
                    .bind(limit.fetch())
                    .fetch_all(self.reader())
                    .await?;
                Ok(onair_core::Page::from_rows(rows, limit, cursor_of))
            }

            async fn stream_by_id(
                &self,
                pool: &sqlx::Pool<$db>,
                id: uuid::Uuid,
            ) -> Result<Option<$crate::StreamView>, $crate::StoreError> {
                Self::view_by_id(pool, $crate::shared::STREAM_VIEW, "s", id).await
            }

            async fn archive_by_id(
                &self,
                pool: &sqlx::Pool<$db>,
                id: uuid::Uuid,
            ) -> Result<Option<$crate::Archive>, $crate::StoreError> {
                Self::view_by_id(pool, $crate::shared::ARCHIVE_VIEW, "a", id).await
            }

            /// One row of a joined view (`view` aliases its main table as `alias`).
            async fn view_by_id<T>(
                pool: &sqlx::Pool<$db>,
                view: &str,
                alias: &str,
                id: uuid::Uuid,
            ) -> Result<Option<T>, $crate::StoreError>
            where
                T: for<'r> sqlx::FromRow<'r, <$db as sqlx::Database>::Row> + Send + Unpin,
            {
                sqlx::query_as(sqlx::AssertSqlSafe(format!("{view} WHERE {alias}.id = $1")))
                    .bind(id)
                    .fetch_optional(pool)
                    .await
                    .map_err(Into::into)
            }
        }

        #[async_trait::async_trait]
        impl $crate::traits::StreamKeyStore for $store {
            async fn stream_key(&self, user_id: uuid::Uuid) -> Result<Option<$crate::StreamKeyRecord>, $crate::StoreError> {
                sqlx::query_as("SELECT user_id, nonce, key_hash, created_at FROM stream_keys WHERE user_id = $1")
                    .bind(user_id)
                    .fetch_optional(self.writer())
                    .await
                    .map_err(Into::into)
            }

            async fn insert_stream_key(&self, record: &$crate::StreamKeyRecord) -> Result<bool, $crate::StoreError> {
                let inserted = sqlx::query(
                    "INSERT INTO stream_keys (user_id, nonce, key_hash, created_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (user_id) DO NOTHING",
                )
                .bind(record.user_id)
                .bind(&record.nonce)
                .bind(&record.key_hash)
                .bind(record.created_at)
                .execute(self.writer())
                .await?;
                Ok(inserted.rows_affected() == 1)
            }

            async fn put_stream_key(&self, record: &$crate::StreamKeyRecord) -> Result<(), $crate::StoreError> {
                sqlx::query(
                    "INSERT INTO stream_keys (user_id, nonce, key_hash, created_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (user_id) DO UPDATE
                     SET nonce = excluded.nonce, key_hash = excluded.key_hash, created_at = excluded.created_at",
                )
                .bind(record.user_id)
                .bind(&record.nonce)
                .bind(&record.key_hash)
                .bind(record.created_at)
                .execute(self.writer())
                .await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::traits::StreamStore for $store {
            async fn start_stream(
                &self,
                id: uuid::Uuid,
                user_id: uuid::Uuid,
                title: &str,
                category: Option<&str>,
            ) -> Result<$crate::StreamView, $crate::StoreError> {
                let now = $crate::Timestamp::now();
                let mut tx = self.writer().begin().await?;
                sqlx::query(
                    "INSERT INTO streams (id, user_id, title, category, status, started_at, updated_at)
                     VALUES ($1, $2, $3, $4, 'live', $5, $5)",
                )
                .bind(id)
                .bind(user_id)
                .bind(title)
                .bind(category)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                Self::enqueue_stream_event(&mut tx, id, user_id, true, now).await?;
                tx.commit().await?;
                self.stream_by_id(self.writer(), id).await?.ok_or($crate::StoreError::NotFound)
            }

            async fn end_stream(&self, user_id: uuid::Uuid) -> Result<$crate::StreamView, $crate::StoreError> {
                let now = $crate::Timestamp::now();
                let mut tx = self.writer().begin().await?;
                let id: uuid::Uuid = sqlx::query_scalar(
                    "UPDATE streams SET status = 'ended', ended_at = $2, updated_at = $2, publisher_session = NULL
                     WHERE user_id = $1 AND status IN ('live', 'offline')
                     RETURNING id",
                )
                .bind(user_id)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                Self::enqueue_stream_event(&mut tx, id, user_id, false, now).await?;
                tx.commit().await?;
                self.stream_by_id(self.writer(), id).await?.ok_or($crate::StoreError::NotFound)
            }

            async fn attach_publisher(
                &self,
                user_id: uuid::Uuid,
                session_id: uuid::Uuid,
                new_stream_id: uuid::Uuid,
            ) -> Result<($crate::StreamView, bool), $crate::StoreError> {
                let now = $crate::Timestamp::now();
                let mut tx = self.writer().begin().await?;
                let active: Option<(uuid::Uuid, Option<uuid::Uuid>)> = sqlx::query_as(
                    "SELECT id, publisher_session FROM streams WHERE user_id = $1 AND status IN ('live', 'offline')",
                )
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
                let taken = || $crate::StoreError::Conflict($crate::Conflict::ActiveStream);
                let (stream_id, resumed) = match active {
                    // The same publisher announcing itself again (a retried callback).
                    Some((id, Some(publisher))) if publisher == session_id => (id, true),
                    Some((_, Some(_))) => return Err(taken()),
                    Some((id, None)) => {
                        let attached = sqlx::query(
                            "UPDATE streams SET status = 'live', publisher_session = $2, updated_at = $3
                             WHERE id = $1 AND publisher_session IS NULL AND status IN ('live', 'offline')",
                        )
                        .bind(id)
                        .bind(session_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        if attached.rows_affected() != 1 {
                            return Err(taken());
                        }
                        (id, true)
                    }
                    None => {
                        let inserted = sqlx::query(
                            "INSERT INTO streams (id, user_id, title, category, status, started_at, updated_at, publisher_session)
                             SELECT $1, u.id,
                                    COALESCE(prev.title, u.username || ' is live'), prev.category,
                                    'live', $3, $3, $2
                             FROM users u
                             LEFT JOIN (SELECT title, category FROM streams WHERE user_id = $4
                                        ORDER BY started_at DESC LIMIT 1) prev ON TRUE
                             WHERE u.id = $4",
                        )
                        .bind(new_stream_id)
                        .bind(session_id)
                        .bind(now)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                        if inserted.rows_affected() != 1 {
                            return Err($crate::StoreError::NotFound);
                        }
                        Self::enqueue_stream_event(&mut tx, new_stream_id, user_id, true, now).await?;
                        (new_stream_id, false)
                    }
                };
                tx.commit().await?;
                let stream = self.stream_by_id(self.writer(), stream_id).await?.ok_or($crate::StoreError::NotFound)?;
                Ok((stream, resumed))
            }

            async fn detach_publisher(&self, session_id: uuid::Uuid) -> Result<bool, $crate::StoreError> {
                let detached = sqlx::query(
                    "UPDATE streams SET status = 'offline', publisher_session = NULL, updated_at = $2
                     WHERE publisher_session = $1 AND status = 'live'",
                )
                .bind(session_id)
                .bind($crate::Timestamp::now())
                .execute(self.writer())
                .await?;
                Ok(detached.rows_affected() == 1)
            }

            async fn end_published_stream(&self, session_id: uuid::Uuid) -> Result<bool, $crate::StoreError> {
                let now = $crate::Timestamp::now();
                let mut tx = self.writer().begin().await?;
                let ended: Option<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
                    "UPDATE streams SET status = 'ended', ended_at = $2, updated_at = $2, publisher_session = NULL
                     WHERE publisher_session = $1 AND status IN ('live', 'offline')
                     RETURNING id, user_id",
                )
                .bind(session_id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some((stream_id, user_id)) = ended {
                    Self::enqueue_stream_event(&mut tx, stream_id, user_id, false, now).await?;
                }
                tx.commit().await?;
                Ok(ended.is_some())
            }

            async fn end_abandoned_streams(&self, cutoff: $crate::Timestamp) -> Result<u64, $crate::StoreError> {
                // The broadcast ended when its publisher left, not when this sweep noticed.
                let mut tx = self.writer().begin().await?;
                let ended: Vec<(uuid::Uuid, uuid::Uuid, $crate::Timestamp)> = sqlx::query_as(
                    "UPDATE streams SET status = 'ended', ended_at = updated_at
                     WHERE status = 'offline' AND updated_at < $1
                     RETURNING id, user_id, ended_at",
                )
                .bind(cutoff)
                .fetch_all(&mut *tx)
                .await?;
                for &(stream_id, user_id, ended_at) in &ended {
                    Self::enqueue_stream_event(&mut tx, stream_id, user_id, false, ended_at).await?;
                }
                tx.commit().await?;
                Ok(ended.len() as u64)
            }

            async fn record_viewer_counts(&self, counts: &[$crate::ViewerCountUpdate]) -> Result<(), $crate::StoreError> {
                let mut tx = self.writer().begin().await?;
                for count in counts {
                    sqlx::query(
                        "UPDATE streams SET viewer_count = $2, unique_viewer_count = $3,
                            peak_viewer_count = CASE WHEN peak_viewer_count > $2 THEN peak_viewer_count ELSE $2 END
                         WHERE id = $1",
                    )
                    .bind(count.stream_id)
                    .bind(count.concurrent)
                    .bind(count.unique)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn stream(&self, id: uuid::Uuid) -> Result<Option<$crate::StreamView>, $crate::StoreError> {
                self.stream_by_id(self.writer(), id).await
            }

            async fn update_stream(
                &self,
                id: uuid::Uuid,
                patch: $crate::StreamPatch,
            ) -> Result<$crate::StreamView, $crate::StoreError> {
                let category = patch.category.as_ref().map(|c| c.as_ref().map(|c| c.as_str()));
                let updated = sqlx::query(
                    "UPDATE streams SET
                        title = COALESCE($2, title),
                        category = CASE WHEN $3 THEN $4 ELSE category END,
                        updated_at = $5
                     WHERE id = $1",
                )
                .bind(id)
                .bind(patch.title.as_ref().map(|t| t.as_str()))
                .bind(category.is_some())
                .bind(category.flatten())
                .bind($crate::Timestamp::now())
                .execute(self.writer())
                .await?;
                if updated.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                self.stream_by_id(self.writer(), id).await?.ok_or($crate::StoreError::NotFound)
            }

            async fn list_streams(
                &self,
                status: onair_core::StreamStatus,
                limit: onair_core::Limit,
                after: Option<onair_core::Cursor>,
            ) -> Result<onair_core::Page<$crate::StreamView>, $crate::StoreError> {
                self.keyset_page($crate::shared::stream_page($crate::shared::LIVE_LIST_FILTER), status.as_str(), limit, after, $crate::StreamView::cursor).await
            }

            async fn user_streams(
                &self,
                user_id: uuid::Uuid,
                limit: onair_core::Limit,
                after: Option<onair_core::Cursor>,
            ) -> Result<onair_core::Page<$crate::StreamView>, $crate::StoreError> {
                self.keyset_page($crate::shared::stream_page("s.user_id = $1"), user_id, limit, after, $crate::StreamView::cursor).await
            }
        }

        #[async_trait::async_trait]
        impl $crate::traits::ArchiveStore for $store {
            async fn insert_archive(&self, archive: $crate::NewArchive) -> Result<$crate::Archive, $crate::StoreError> {
                let inserted = sqlx::query(
                    "INSERT INTO archives (id, stream_id, user_id, status, duration_ms, playlist_path, created_at)
                     SELECT $1, s.id, s.user_id, $3, $4, $5, $6 FROM streams s WHERE s.id = $2",
                )
                .bind(archive.id)
                .bind(archive.stream_id)
                .bind(archive.status.as_str())
                .bind(archive.duration_ms)
                .bind(&archive.playlist_path)
                .bind(archive.created_at)
                .execute(self.writer())
                .await?;
                if inserted.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                self.archive_by_id(self.writer(), archive.id).await?.ok_or($crate::StoreError::NotFound)
            }

            async fn archive(&self, id: uuid::Uuid) -> Result<Option<$crate::Archive>, $crate::StoreError> {
                self.archive_by_id(self.reader(), id).await
            }

            async fn list_archives(
                &self,
                limit: onair_core::Limit,
                after: Option<onair_core::Cursor>,
            ) -> Result<onair_core::Page<$crate::Archive>, $crate::StoreError> {
                self.keyset_page($crate::shared::archive_page("$1 IS NULL"), None::<uuid::Uuid>, limit, after, $crate::Archive::cursor).await
            }

            async fn user_archives(
                &self,
                user_id: uuid::Uuid,
                limit: onair_core::Limit,
                after: Option<onair_core::Cursor>,
            ) -> Result<onair_core::Page<$crate::Archive>, $crate::StoreError> {
                self.keyset_page($crate::shared::archive_page("a.user_id = $1"), user_id, limit, after, $crate::Archive::cursor).await
            }
        }

        #[async_trait::async_trait]
        impl $crate::traits::ChatStore for $store {
            async fn set_moderator(&self, channel: uuid::Uuid, user: uuid::Uuid, moderator: bool) -> Result<bool, $crate::StoreError> {
                let changed = if moderator {
                    sqlx::query(
                        "INSERT INTO channel_moderators (channel_id, user_id, created_at) VALUES ($1, $2, $3)
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(channel)
                    .bind(user)
                    .bind($crate::Timestamp::now())
                    .execute(self.writer())
                    .await?
                } else {
                    sqlx::query("DELETE FROM channel_moderators WHERE channel_id = $1 AND user_id = $2")
                        .bind(channel)
                        .bind(user)
                        .execute(self.writer())
                        .await?
                };
                Ok(changed.rows_affected() == 1)
            }

            async fn chat_standing(&self, channel: uuid::Uuid, user: uuid::Uuid) -> Result<$crate::ChatStanding, $crate::StoreError> {
                sqlx::query_as(
                    "SELECT
                        EXISTS (SELECT 1 FROM channel_moderators WHERE channel_id = $1 AND user_id = $2) AS is_moderator,
                        EXISTS (SELECT 1 FROM channel_bans WHERE channel_id = $1 AND user_id = $2 AND expires_at IS NULL) AS banned,
                        (SELECT expires_at FROM channel_bans WHERE channel_id = $1 AND user_id = $2 AND expires_at > $3) AS timed_out_until,
                        (SELECT created_at FROM follows WHERE follower_id = $2 AND following_id = $1) AS followed_at",
                )
                .bind(channel)
                .bind(user)
                .bind($crate::Timestamp::now())
                .fetch_one(self.writer())
                .await
                .map_err(Into::into)
            }

            async fn put_ban(&self, ban: $crate::NewBan) -> Result<(), $crate::StoreError> {
                sqlx::query(
                    "INSERT INTO channel_bans (channel_id, user_id, expires_at, reason, created_by, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (channel_id, user_id) DO UPDATE SET expires_at = excluded.expires_at,
                        reason = excluded.reason, created_by = excluded.created_by, created_at = excluded.created_at",
                )
                .bind(ban.channel_id)
                .bind(ban.user_id)
                .bind(ban.expires_at)
                .bind(&ban.reason)
                .bind(ban.created_by)
                .bind($crate::Timestamp::now())
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn lift_ban(&self, channel: uuid::Uuid, user: uuid::Uuid) -> Result<bool, $crate::StoreError> {
                let lifted = sqlx::query("DELETE FROM channel_bans WHERE channel_id = $1 AND user_id = $2")
                    .bind(channel)
                    .bind(user)
                    .execute(self.writer())
                    .await?;
                Ok(lifted.rows_affected() == 1)
            }

            async fn chat_settings(&self, channel: uuid::Uuid) -> Result<$crate::ChatSettings, $crate::StoreError> {
                let settings = sqlx::query_as(
                    "SELECT slow_mode_secs, followers_only_minutes FROM chat_settings WHERE channel_id = $1",
                )
                .bind(channel)
                .fetch_optional(self.writer())
                .await?;
                Ok(settings.unwrap_or_default())
            }

            async fn put_chat_settings(&self, channel: uuid::Uuid, settings: $crate::ChatSettings) -> Result<(), $crate::StoreError> {
                sqlx::query(
                    "INSERT INTO chat_settings (channel_id, slow_mode_secs, followers_only_minutes, updated_at)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (channel_id) DO UPDATE SET slow_mode_secs = excluded.slow_mode_secs,
                        followers_only_minutes = excluded.followers_only_minutes, updated_at = excluded.updated_at",
                )
                .bind(channel)
                .bind(settings.slow_mode_secs)
                .bind(settings.followers_only_minutes)
                .bind($crate::Timestamp::now())
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn log_moderation(&self, entry: &$crate::ModerationEntry) -> Result<(), $crate::StoreError> {
                sqlx::query(
                    "INSERT INTO moderation_log (id, channel_id, moderator_id, action, target_user_id, message_id, details, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(entry.id)
                .bind(entry.channel_id)
                .bind(entry.moderator_id)
                .bind(&entry.action)
                .bind(entry.target_user_id)
                .bind(entry.message_id)
                .bind(&entry.details)
                .bind(entry.created_at)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn moderation_log(
                &self,
                channel: uuid::Uuid,
                limit: onair_core::Limit,
                after: Option<onair_core::Cursor>,
            ) -> Result<onair_core::Page<$crate::ModerationEntry>, $crate::StoreError> {
                self.keyset_page(
                    "SELECT id, channel_id, moderator_id, action, target_user_id, message_id, details, created_at
                     FROM moderation_log WHERE channel_id = $1 AND (created_at, id) < ($2, $3)
                     ORDER BY created_at DESC, id DESC LIMIT $4"
                        .to_owned(),
                    channel,
                    limit,
                    after,
                    $crate::ModerationEntry::cursor,
                )
                .await
            }
        }
    };
}

pub(crate) use impl_store_traits;
