//! The wire shape of keyset pagination (review C3): `?limit=&cursor=` in,
//! `{"data":[…],"pagination":{"next_cursor":…,"has_more":…}}` out.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use std::sync::Arc;

use onair_core::{Cursor, CursorError, Limit, Page};
use onair_store::{StoreError, UserStore};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, Json};
use crate::secrets::derive_key;

/// Cursors leave the server signed, so a cursor that was altered (or made up) is refused
/// with `invalid_cursor` instead of silently paging from somewhere else.
pub struct Cursors {
    key: [u8; 32],
}

/// 96 bits of HMAC-SHA-256: plenty against forgery of a page position.
const TAG_BYTES: usize = 12;

impl Cursors {
    pub fn new(root_secret: &[u8]) -> Self {
        Self {
            key: derive_key(root_secret, "onair/cursor"),
        }
    }

    fn tag(&self, body: &str) -> [u8; TAG_BYTES] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(body.as_bytes());
        mac.finalize().into_bytes()[..TAG_BYTES]
            .try_into()
            .expect("12 bytes")
    }

    pub fn encode(&self, cursor: Cursor) -> String {
        let body = cursor.encode();
        let tag = URL_SAFE_NO_PAD.encode(self.tag(&body));
        format!("{body}.{tag}")
    }

    pub fn decode(&self, signed: &str) -> Result<Cursor, CursorError> {
        let (body, tag) = signed.split_once('.').ok_or(CursorError)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| CursorError)?;
        if !bool::from(tag.ct_eq(&self.tag(body))) {
            return Err(CursorError);
        }
        Cursor::decode(body)
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1–100 (default 20). Larger values are rejected with `invalid_limit`.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page; omit for the first page.
    pub cursor: Option<String>,
}

impl Cursors {
    /// The page size and start position a list request asks for.
    pub fn parse(
        &self,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<(Limit, Option<Cursor>), ApiError> {
        let limit = Limit::new(limit)?;
        let cursor = cursor.map(|c| self.decode(c)).transpose()?;
        Ok((limit, cursor))
    }

    /// Reads one page with `fetch` and shapes it for the wire.
    pub async fn page<R, T>(
        &self,
        query: &PageQuery,
        fetch: impl AsyncFnOnce(Limit, Option<Cursor>) -> Result<Page<R>, StoreError>,
        to_dto: impl FnMut(R) -> T,
    ) -> Result<Json<PageBody<T>>, ApiError> {
        let (limit, cursor) = self.parse(query.limit, query.cursor.as_deref())?;
        let page = fetch(limit, cursor).await?;
        Ok(Json(PageBody::from_page(self, page, to_dto)))
    }
}

/// Lists that belong to a user (followers, broadcasts, archives): an unknown user is a
/// 404, not an empty list. That costs a query only when the page comes back empty.
pub struct UserLists {
    cursors: Arc<Cursors>,
    users: Arc<dyn UserStore>,
}

impl UserLists {
    pub fn new(cursors: Arc<Cursors>, users: Arc<dyn UserStore>) -> Self {
        Self { cursors, users }
    }

    pub fn cursors(&self) -> &Cursors {
        &self.cursors
    }

    pub async fn page<R, T>(
        &self,
        owner: uuid::Uuid,
        query: &PageQuery,
        fetch: impl AsyncFnOnce(Limit, Option<Cursor>) -> Result<Page<R>, StoreError>,
        to_dto: impl FnMut(R) -> T,
    ) -> Result<Json<PageBody<T>>, ApiError> {
        let page = self.cursors.page(query, fetch, to_dto).await?;
        if page.0.data.is_empty() && self.users.profile(owner).await?.is_none() {
            return Err(ApiError::NotFound("user"));
        }
        Ok(page)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PageBody<T> {
    pub data: Vec<T>,
    pub pagination: Pagination,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Pagination {
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

impl<T> PageBody<T> {
    pub fn from_page<R>(cursors: &Cursors, page: Page<R>, to_dto: impl FnMut(R) -> T) -> Self {
        let next_cursor = page.next_cursor.map(|c| cursors.encode(c));
        Self {
            pagination: Pagination {
                has_more: next_cursor.is_some(),
                next_cursor,
            },
            data: page.items.into_iter().map(to_dto).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_cursors_round_trip_and_reject_tampering() {
        let cursors = Cursors::new(b"0123456789abcdef0123456789abcdef");
        let at = chrono::DateTime::from_timestamp_micros(1_800_000_000_123_456).unwrap();
        let cursor = Cursor::new(at, uuid::Uuid::now_v7());
        let signed = cursors.encode(cursor);
        assert_eq!(cursors.decode(&signed), Ok(cursor));
        let (body, tag) = signed.split_once('.').unwrap();
        for (i, _) in body.char_indices() {
            let mut altered = body.to_owned();
            let replacement = if &body[i..=i] == "A" { "B" } else { "A" };
            altered.replace_range(i..=i, replacement);
            assert!(
                cursors.decode(&format!("{altered}.{tag}")).is_err(),
                "altered at {i}"
            );
        }
        assert!(cursors.decode(body).is_err(), "unsigned");
        let other = Cursors::new(b"another secret of thirty-two bytes!");
        assert!(other.decode(&signed).is_err(), "signed by another server");
    }
}
