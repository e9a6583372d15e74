//! Keyset pagination (review C3): a page is addressed by the sort key of its last row,
//! never by an offset, so page N costs the same as page 1.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The position after which the next page starts: the sort key of the last row returned,
/// with the id as tie-breaker. Lists are ordered newest first by a timestamp, except the
/// live directory, which can be ordered by audience.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub key: SortKey,
    pub id: Uuid,
}

/// The value a list is ordered by, descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    At(DateTime<Utc>),
    Count(i64),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the cursor is malformed")]
pub struct CursorError;

/// Each key kind has its own tag, so a cursor from one ordering never pages another.
const AT_TAG: &str = "v1";
const COUNT_TAG: &str = "c1";

impl Cursor {
    pub fn new(at: DateTime<Utc>, id: Uuid) -> Self {
        Self {
            key: SortKey::At(at),
            id,
        }
    }

    pub fn by_count(count: i64, id: Uuid) -> Self {
        Self {
            key: SortKey::Count(count),
            id,
        }
    }

    /// Opaque to clients: base64url of `v1.<unix micros>.<uuid>` or `c1.<count>.<uuid>`.
    pub fn encode(&self) -> String {
        let (tag, value) = match self.key {
            SortKey::At(at) => (AT_TAG, at.timestamp_micros()),
            SortKey::Count(count) => (COUNT_TAG, count),
        };
        URL_SAFE_NO_PAD.encode(format!("{tag}.{value}.{}", self.id.simple()))
    }

    pub fn decode(encoded: &str) -> Result<Self, CursorError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded.as_bytes())
            .map_err(|_| CursorError)?;
        let raw = std::str::from_utf8(&bytes).map_err(|_| CursorError)?;
        let mut parts = raw.split('.');
        let (Some(tag), Some(value), Some(id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CursorError);
        };
        let value: i64 = value.parse().map_err(|_| CursorError)?;
        let key = match tag {
            AT_TAG => SortKey::At(DateTime::from_timestamp_micros(value).ok_or(CursorError)?),
            COUNT_TAG => SortKey::Count(value),
            _ => return Err(CursorError),
        };
        let id = Uuid::try_parse(id).map_err(|_| CursorError)?;
        Ok(Self { key, id })
    }
}

/// Page size: 1..=100, default 20. Larger values are rejected rather than silently
/// clamped, so a client never believes it received everything when it did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(u32);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("limit must be between 1 and {max}", max = Limit::MAX)]
pub struct LimitError;

impl Limit {
    pub const DEFAULT: u32 = 20;
    pub const MAX: u32 = 100;

    pub fn new(value: Option<u32>) -> Result<Self, LimitError> {
        match value.unwrap_or(Self::DEFAULT) {
            n @ 1..=Self::MAX => Ok(Self(n)),
            _ => Err(LimitError),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// Rows to fetch: one more than the page, to learn whether another page exists.
    pub fn fetch(self) -> i64 {
        i64::from(self.0) + 1
    }
}

impl Default for Limit {
    fn default() -> Self {
        Self(Self::DEFAULT)
    }
}

/// One page of a keyset-paginated list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<Cursor>,
}

impl<T> Page<T> {
    /// Builds a page from `limit.fetch()` rows: the extra row only signals that more exist.
    pub fn from_rows(mut rows: Vec<T>, limit: Limit, key: impl Fn(&T) -> Cursor) -> Self {
        let has_more = rows.len() > limit.get() as usize;
        rows.truncate(limit.get() as usize);
        let next_cursor = if has_more { rows.last().map(key) } else { None };
        Self {
            items: rows,
            next_cursor,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let cursor = Cursor::new(at, Uuid::now_v7());
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        let ranked = Cursor::by_count(41, Uuid::now_v7());
        assert_eq!(Cursor::decode(&ranked.encode()), Ok(ranked));
        assert_ne!(
            ranked.encode()[..4],
            cursor.encode()[..4],
            "kinds are told apart"
        );
    }

    #[test]
    fn malformed_cursors_are_rejected() {
        for bad in [
            "",
            "!!!",
            "djEuMTIz",
            &URL_SAFE_NO_PAD.encode("v2.1.00000000000000000000000000000000"),
            &URL_SAFE_NO_PAD.encode("c1.x.00000000000000000000000000000000"),
            &URL_SAFE_NO_PAD.encode("v1.x.00000000000000000000000000000000"),
            &URL_SAFE_NO_PAD.encode("v1.1.nope"),
            &URL_SAFE_NO_PAD.encode("v1.1.00000000000000000000000000000000.extra"),
            &URL_SAFE_NO_PAD.encode(format!("v1.{}.{}", i64::MAX, Uuid::nil().simple())),
        ] {
            assert_eq!(Cursor::decode(bad), Err(CursorError), "{bad:?}");
        }
    }

    #[test]
    fn limit_bounds() {
        assert_eq!(Limit::new(None).unwrap().get(), 20);
        assert_eq!(Limit::new(Some(100)).unwrap().get(), 100);
        assert_eq!(Limit::new(Some(0)), Err(LimitError));
        assert_eq!(Limit::new(Some(101)), Err(LimitError));
    }

    #[test]
    fn page_uses_the_extra_row_only_as_a_signal() {
        let limit = Limit::new(Some(2)).unwrap();
        let key = |n: &i64| Cursor::new(DateTime::from_timestamp_micros(*n).unwrap(), Uuid::nil());
        let page = Page::from_rows(vec![3, 2, 1], limit, key);
        assert_eq!(page.items, vec![3, 2]);
        assert_eq!(page.next_cursor, Some(key(&2)));
        let last = Page::from_rows(vec![1], limit, key);
        assert_eq!(last.next_cursor, None);
    }
}
