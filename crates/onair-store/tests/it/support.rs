//! Set-up shared by the contract cases: a fresh migrated store on a backend, users,
//! broadcasts, and a walker that pages through a keyset-paginated list.

use std::future::Future;
use std::sync::Arc;

use chrono::{Duration, Utc};
use onair_core::{Cursor, Email, Limit, Page, Username};
use onair_store::testing::TestBackend;
use onair_store::{NewUser, Store, StoreError, StreamView, Timestamp, UserProfile};
use uuid::Uuid;

/// Runs `test` with a freshly migrated store on `backend` (the runner of
/// `onair_store::backend_tests!` in this suite).
pub async fn on_store<F, Fut>(backend: TestBackend, test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    onair_store::testing::with_backend(backend, move |config| async move {
        let store = onair_store::connect(&config).await.expect("connect");
        store.migrate().await.expect("migrate");
        test(Arc::clone(&store)).await;
        store.close().await;
    })
    .await;
}

/// `offset` from now (negative: in the past), at the precision the store keeps.
pub fn from_now(offset: Duration) -> Timestamp {
    Timestamp::from(Utc::now() + offset)
}

pub fn new_user(name: &str) -> NewUser {
    new_user_with_email(name, &format!("{name}@example.com"))
}

pub fn new_user_with_email(name: &str, email: &str) -> NewUser {
    NewUser {
        id: Uuid::now_v7(),
        username: Username::parse(name).unwrap(),
        email: Email::parse(email).unwrap(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: Timestamp::now(),
    }
}

/// Creates user `name` (email `name@example.com`).
pub async fn user(store: &Arc<dyn Store>, name: &str) -> UserProfile {
    store
        .create_user(new_user(name))
        .await
        .expect("create user")
}

/// Creates `count` users named `{prefix}{i}`, in order.
pub async fn users(store: &Arc<dyn Store>, prefix: &str, count: usize) -> Vec<UserProfile> {
    let mut created = Vec::with_capacity(count);
    for i in 0..count {
        created.push(user(store, &format!("{prefix}{i}")).await);
    }
    created
}

/// The user's profile, which must exist.
pub async fn profile(store: &Arc<dyn Store>, id: Uuid) -> UserProfile {
    store.profile(id).await.unwrap().expect("the user exists")
}

/// Starts a live broadcast for `owner` (through the API, no publisher).
pub async fn go_live(store: &Arc<dyn Store>, owner: Uuid, title: &str) -> StreamView {
    store
        .start_stream(Uuid::now_v7(), owner, title, None)
        .await
        .expect("start stream")
}

/// A broadcast of `owner` that has started and ended.
pub async fn past_stream(store: &Arc<dyn Store>, owner: Uuid, title: &str) -> StreamView {
    let live = go_live(store, owner, title).await;
    let ended = store.end_stream(owner).await.expect("end stream");
    assert_eq!(ended.id, live.id);
    ended
}

/// Walks a list from its first page to its last, `limit` rows at a time, passing each
/// cursor through its wire form as the API does. Checks the paging invariants (only a
/// full page announces a next one; the last page has no cursor) and returns the pages.
pub async fn pages<T, F, Fut>(limit: u32, mut fetch: F) -> Vec<Vec<T>>
where
    F: FnMut(Limit, Option<Cursor>) -> Fut,
    Fut: Future<Output = Result<Page<T>, StoreError>>,
{
    let limit = Limit::new(Some(limit)).unwrap();
    let (mut pages, mut after) = (Vec::new(), None);
    loop {
        let page = fetch(limit, after).await.expect("fetch a page");
        assert!(page.items.len() <= limit.get() as usize, "page over limit");
        assert!(pages.len() < 100, "pagination does not end");
        pages.push(page.items);
        match page.next_cursor {
            Some(next) => {
                assert_eq!(
                    pages.last().unwrap().len(),
                    limit.get() as usize,
                    "only a full page has a next one"
                );
                after = Some(Cursor::decode(&next.encode()).expect("cursor round-trips"));
            }
            None => return pages,
        }
    }
}

/// How many rows each page held.
pub fn sizes<T>(pages: &[Vec<T>]) -> Vec<usize> {
    pages.iter().map(Vec::len).collect()
}

/// Every row of every page, in order, through `key`.
pub fn flat<T, K>(pages: &[Vec<T>], key: impl Fn(&T) -> K) -> Vec<K> {
    pages.iter().flatten().map(key).collect()
}
