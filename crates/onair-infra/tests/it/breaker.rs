//! The object store's circuit breaker against a real S3 (moto) behind a TCP proxy the
//! test cuts and restores: failures open it, calls are then refused without a
//! connection, and after the cool-down one probe closes it again once S3 is back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use onair_infra::testing::MotoS3;
use onair_infra::{BreakerSettings, MediaStore, MediaStoreError, S3Limits};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Forwards connections to `upstream` while up; while down, accepts and closes them
/// (and cuts those open), like a store that stopped answering.
struct Proxy {
    port: u16,
    up: watch::Sender<bool>,
    accepted: Arc<AtomicUsize>,
}

impl Proxy {
    async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, _) = watch::channel(true);
        let accepted = Arc::new(AtomicUsize::new(0));
        let (state, count) = (up.clone(), Arc::clone(&accepted));
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let mut watching = state.subscribe();
                if !*watching.borrow_and_update() {
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = watching.wait_for(|up| !up) => {}
                    }
                });
            }
        });
        Self { port, up, accepted }
    }

    fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

#[tokio::test]
#[cfg_attr(not(onair_test_s3), ignore = "set ONAIR_TEST_MOTO_SERVER")]
async fn the_s3_breaker_opens_while_the_store_is_down_and_closes_once_it_is_back() {
    let moto = MotoS3::start().await;
    let upstream = moto.endpoint().rsplit(':').next().unwrap().parse().unwrap();
    let proxy = Proxy::start(upstream).await;
    let mut options = moto.options();
    options.endpoint = Some(format!("http://127.0.0.1:{}", proxy.port));
    let cool_down = Duration::from_millis(500);
    options.limits = S3Limits {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        max_retries: 0,
        retry_timeout: Duration::from_secs(5),
        breaker: BreakerSettings {
            failure_threshold: 2,
            cool_down,
        },
    };
    let spool = std::env::temp_dir();
    let store = MediaStore::open_with(Some(&moto.url("breaker")), &spool, &options).unwrap();
    let object = Bytes::from_static(b"segment");
    store.put("live/a.ts", object.clone()).await.unwrap();

    proxy.set_up(false);
    for _ in 0..2 {
        let failed = store.get("live/a.ts").await;
        assert!(
            matches!(failed, Err(MediaStoreError::Store(_))),
            "{failed:?}"
        );
    }
    // Open: refused at once, without a connection, saying when to come back.
    let before = proxy.accepted();
    let refused = store.get("live/a.ts").await;
    let Err(MediaStoreError::CircuitOpen(open)) = &refused else {
        panic!("{refused:?}");
    };
    assert!(open.retry_after <= cool_down, "{open:?}");
    assert!(matches!(
        store.put("live/b.ts", object.clone()).await,
        Err(MediaStoreError::CircuitOpen(_))
    ));
    assert_eq!(proxy.accepted(), before, "no call made while open");

    // After the cool-down one probe goes; still down, it opens the breaker again.
    tokio::time::sleep(cool_down).await;
    let probe = store.get("live/a.ts").await;
    assert!(matches!(probe, Err(MediaStoreError::Store(_))), "{probe:?}");
    assert!(matches!(
        store.get("live/a.ts").await,
        Err(MediaStoreError::CircuitOpen(_))
    ));

    // Back up: the next probe succeeds and closes it.
    proxy.set_up(true);
    tokio::time::sleep(cool_down).await;
    assert_eq!(store.get("live/a.ts").await.unwrap(), Some(object.clone()));
    store.put("live/b.ts", object).await.unwrap();
    assert_eq!(store.list("live").await.unwrap().len(), 2);
}
