//! What every domain's SQL leans on, generic over the sqlx database so both backends
//! share it: keyset pages, insert-or-delete toggles, one row of a joined view, and the
//! bounds that let a function bind and read values on either backend.

use onair_core::{Cursor, Limit, Page, SortKey};
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};
use uuid::Uuid;

use crate::error::StoreError;
use crate::timestamp::Timestamp;

/// A backend whose queries take their arguments as sqlx expects and count the rows they
/// change (both of ours).
pub(crate) trait Db: Database<Arguments: IntoArguments<Self>, QueryResult: Changed> {}
impl<DB: Database<Arguments: IntoArguments<DB>, QueryResult: Changed>> Db for DB {}

/// How many rows a statement changed; sqlx has this per backend, not as a trait.
pub(crate) trait Changed {
    fn rows_affected(&self) -> u64;
}

impl Changed for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

impl Changed for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

/// A value a query on `DB` can bind.
pub(crate) trait Bind<DB: Database>: for<'q> Encode<'q, DB> + Type<DB> + Send {}
impl<DB: Database, T: for<'q> Encode<'q, DB> + Type<DB> + Send> Bind<DB> for T {}

/// A row a query on `DB` can return.
pub(crate) trait Row<DB: Database>: for<'r> FromRow<'r, DB::Row> + Send + Unpin {}
impl<DB: Database, T: for<'r> FromRow<'r, DB::Row> + Send + Unpin> Row<DB> for T {}

/// Keyset start of a list ordered by a timestamp: the cursor's key, or past the newest row
/// for the first page. A cursor from another ordering is refused.
pub(crate) fn keyset(after: Option<Cursor>) -> Result<(Timestamp, Uuid), StoreError> {
    match after {
        Some(Cursor {
            key: SortKey::At(at),
            id,
        }) => Ok((Timestamp::from(at), id)),
        Some(_) => Err(StoreError::ForeignCursor),
        None => Ok((Timestamp::max(), Uuid::max())),
    }
}

/// Keyset start of a list ordered by a count, as [`keyset`] is for timestamps.
pub(crate) fn count_keyset(after: Option<Cursor>) -> Result<(i64, Uuid), StoreError> {
    match after {
        Some(Cursor {
            key: SortKey::Count(count),
            id,
        }) => Ok((count, id)),
        Some(_) => Err(StoreError::ForeignCursor),
        None => Ok((i64::MAX, Uuid::max())),
    }
}

/// One page of a list ordered by (timestamp, id) descending: `sql` takes the filter
/// value as `$1`, the keyset as `$2`/`$3` and the row count as `$4`.
pub(crate) async fn keyset_page<'e, DB: Db, T: Row<DB>>(
    exec: impl Executor<'e, Database = DB>,
    sql: String,
    filter: impl Bind<DB> + 'static,
    limit: Limit,
    after: Option<Cursor>,
    cursor_of: fn(&T) -> Cursor,
) -> Result<Page<T>, StoreError>
where
    Timestamp: Bind<DB>,
    Uuid: Bind<DB>,
    i64: Bind<DB>,
{
    page_from(exec, sql, filter, keyset(after)?, limit, cursor_of).await
}

/// One page of a keyset-ordered list starting after `start` (the sort key and id of the
/// previous page's last row); the parameters as for [`keyset_page`].
pub(crate) async fn page_from<'e, DB: Db, T: Row<DB>, K: Bind<DB> + 'static>(
    exec: impl Executor<'e, Database = DB>,
    sql: String,
    filter: impl Bind<DB> + 'static,
    start: (K, Uuid),
    limit: Limit,
    cursor_of: fn(&T) -> Cursor,
) -> Result<Page<T>, StoreError>
where
    Uuid: Bind<DB>,
    i64: Bind<DB>,
{
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(filter)
        .bind(start.0)
        .bind(start.1)
        .bind(limit.fetch())
        .fetch_all(exec)
        .await?;
    Ok(Page::from_rows(rows, limit, cursor_of))
}

/// The row with id `id` of a joined view (`view` aliases its main table as `alias`).
pub(crate) async fn row_by_id<'e, DB: Db, T: Row<DB>>(
    exec: impl Executor<'e, Database = DB>,
    view: &str,
    alias: &str,
    id: Uuid,
) -> Result<Option<T>, StoreError>
where
    Uuid: Bind<DB>,
{
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{view} WHERE {alias}.id = $1")))
        .bind(id)
        .fetch_optional(exec)
        .await
        .map_err(Into::into)
}

/// A row that exists or not: a follow, a moderator appointment, a mute. `insert` takes
/// the pair as `$1`/`$2` and the time as `$3`, and does nothing when the row exists;
/// `delete` takes the pair.
pub(crate) struct Toggle {
    pub(crate) insert: &'static str,
    pub(crate) delete: &'static str,
}

impl Toggle {
    /// Inserts (`on`) or deletes the row of `pair`; returns whether anything changed.
    pub(crate) async fn set<'e, DB: Db>(
        &self,
        exec: impl Executor<'e, Database = DB>,
        (first, second): (Uuid, Uuid),
        on: bool,
    ) -> Result<bool, StoreError>
    where
        Uuid: Bind<DB>,
        Timestamp: Bind<DB>,
    {
        let query = if on {
            sqlx::query(self.insert)
                .bind(first)
                .bind(second)
                .bind(Timestamp::now())
        } else {
            sqlx::query(self.delete).bind(first).bind(second)
        };
        Ok(query.execute(exec).await?.rows_affected() == 1)
    }
}
