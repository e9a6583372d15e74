#[tokio::test]
async fn smoke() {
    onair_store::testing::with_each_backend(|_, config| async move {
        let store = onair_store::connect(&config).await.unwrap();
        store.migrate().await.unwrap();
        store.ping().await.unwrap();
    })
    .await;
}
