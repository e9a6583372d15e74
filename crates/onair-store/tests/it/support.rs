use std::future::Future;
use std::sync::Arc;

use onair_core::{Email, Username};
use onair_store::{NewUser, Store, Timestamp, UserProfile};
use uuid::Uuid;

/// Runs `test` with a migrated store on every configured backend.
pub async fn each_store<F, Fut>(test: F)
where
    F: Fn(Arc<dyn Store>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let test = Arc::new(test);
    onair_store::testing::with_each_backend(move |_, config| {
        let test = Arc::clone(&test);
        async move {
            let store = onair_store::connect(&config).await.expect("connect");
            store.migrate().await.expect("migrate");
            test(Arc::clone(&store)).await;
            store.close().await;
        }
    })
    .await;
}

pub fn new_user(name: &str) -> NewUser {
    NewUser {
        id: Uuid::now_v7(),
        username: Username::parse(name).unwrap(),
        email: Email::parse(&format!("{name}@example.com")).unwrap(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: Timestamp::now(),
    }
}

pub async fn user(store: &Arc<dyn Store>, name: &str) -> UserProfile {
    store
        .create_user(new_user(name))
        .await
        .expect("create user")
}
