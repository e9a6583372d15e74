//! Domain types and rules of OnAir, free of I/O: validated newtypes, stream states and the
//! keyset-pagination cursor. Everything that crosses the HTTP or storage boundary is parsed
//! into these types first, so the layers behind them never see unchecked input.

mod chat;
mod invisible;
mod pagination;
mod stream;
mod trace;
mod validate;

pub use chat::ChatText;
pub use pagination::{Cursor, CursorError, Limit, LimitError, Page, SortKey};
pub use stream::{StreamSort, StreamStatus, UnknownStatus};
pub use trace::TraceParent;
pub use validate::{
    AvatarUrl, Bio, Category, DisplayName, Email, Password, StreamTitle, Username, ValidationError,
};
