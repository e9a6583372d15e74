//! The wire shape of keyset pagination (review C3): `?limit=&cursor=` in,
//! `{"data":[…],"pagination":{"next_cursor":…,"has_more":…}}` out.

use onair_core::{Cursor, Limit, Page};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1–100 (default 20). Larger values are rejected with `invalid_limit`.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page; omit for the first page.
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn parse(&self) -> Result<(Limit, Option<Cursor>), ApiError> {
        parse(self.limit, self.cursor.as_deref())
    }
}

pub fn parse(
    limit: Option<u32>,
    cursor: Option<&str>,
) -> Result<(Limit, Option<Cursor>), ApiError> {
    let limit = Limit::new(limit)?;
    let cursor = cursor.map(Cursor::decode).transpose()?;
    Ok((limit, cursor))
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
    pub fn from_page<R>(page: Page<R>, to_dto: impl FnMut(R) -> T) -> Self {
        let next_cursor = page.next_cursor.map(|c| c.encode());
        Self {
            pagination: Pagination {
                has_more: next_cursor.is_some(),
                next_cursor,
            },
            data: page.items.into_iter().map(to_dto).collect(),
        }
    }
}
