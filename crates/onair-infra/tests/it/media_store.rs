//! The media store contract on each kind of store: the local directory (`local::<case>`),
//! object_store's in-process store (`memory::<case>`) and S3 (`s3::<case>`, a moto
//! server of the test's own; ignored, and counted so, unless ONAIR_TEST_MOTO_SERVER was
//! set at build time).

use std::path::Path;

use bytes::Bytes;
use onair_infra::{MediaStore, MediaStoreError, StoredObject};

/// Declares each listed case once per kind of store.
macro_rules! store_tests {
    ($($name:ident),+ $(,)?) => {
        mod local {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = onair_infra::MediaStore::open(None, dir.path()).unwrap();
                    super::$name(store).await;
                }
            )+
        }
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    let store = onair_infra::MediaStore::open(
                        Some("memory:///media"),
                        &std::env::temp_dir(),
                    )
                    .unwrap();
                    super::$name(store).await;
                }
            )+
        }
        mod s3 {
            $(
                #[tokio::test]
                #[cfg_attr(not(onair_test_s3), ignore = "set ONAIR_TEST_MOTO_SERVER")]
                async fn $name() {
                    let moto = onair_infra::testing::MotoS3::start().await;
                    super::$name(moto.store("media")).await;
                }
            )+
        }
    };
}

store_tests!(
    put_file_streams_small_and_multipart_files,
    delete_prefix_removes_everything_under_it_and_is_idempotent,
    list_and_size_of_prefix_account_for_what_is_stored,
    upload_dir_and_download_prefix_round_trip,
);

/// Bytes that are not all alike, so a part uploaded twice or out of order shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

async fn put_file_streams_small_and_multipart_files(store: MediaStore) {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("thumbnail.jpg");
    std::fs::write(&small, b"jpeg").unwrap();
    assert_eq!(
        store
            .put_file("clips/c/thumbnail.jpg", &small)
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        store.get("clips/c/thumbnail.jpg").await.unwrap().as_deref(),
        Some(&b"jpeg"[..])
    );

    // Larger than one part: sent as a multipart upload of two parts.
    let large = dir.path().join("clip.mp4");
    let content = pattern((9 << 20) + 123);
    std::fs::write(&large, &content).unwrap();
    let size = store.put_file("clips/c/clip.mp4", &large).await.unwrap();
    assert_eq!(size, content.len() as u64);
    let stored = store.get("clips/c/clip.mp4").await.unwrap().unwrap();
    assert!(
        stored == content,
        "the multipart object differs from the file"
    );

    let missing = store
        .put_file("clips/c/none.mp4", &dir.path().join("none.mp4"))
        .await;
    assert!(
        matches!(missing, Err(MediaStoreError::Io { .. })),
        "{missing:?}"
    );
}

async fn delete_prefix_removes_everything_under_it_and_is_idempotent(store: MediaStore) {
    for n in 0..25 {
        let key = format!("vod/a/v1/360p/seg_{n:05}.ts");
        store.put(&key, Bytes::from_static(b"ts")).await.unwrap();
    }
    store
        .put("vod/a/v1/master.m3u8", Bytes::from_static(b"#EXTM3U"))
        .await
        .unwrap();
    // A sibling whose name starts the same is not under `vod/a`.
    store
        .put("vod/ab/v1/master.m3u8", Bytes::from_static(b"#EXTM3U"))
        .await
        .unwrap();

    assert_eq!(store.delete_prefix("vod/a").await.unwrap(), 26);
    assert_eq!(store.list("vod/a").await.unwrap(), []);
    assert_eq!(store.get("vod/a/v1/master.m3u8").await.unwrap(), None);
    assert!(store.get("vod/ab/v1/master.m3u8").await.unwrap().is_some());
    // A retried delete finds nothing and succeeds.
    assert_eq!(store.delete_prefix("vod/a").await.unwrap(), 0);
    assert_eq!(store.delete_prefix("vod/never").await.unwrap(), 0);
    // Never the whole store.
    for everything in ["", "/"] {
        let refused = store.delete_prefix(everything).await;
        assert!(
            matches!(refused, Err(MediaStoreError::InvalidKey(_))),
            "{refused:?}"
        );
    }
    assert!(store.get("vod/ab/v1/master.m3u8").await.unwrap().is_some());
}

async fn list_and_size_of_prefix_account_for_what_is_stored(store: MediaStore) {
    store
        .put("clips/x/clip.mp4", Bytes::from(vec![0; 1000]))
        .await
        .unwrap();
    store
        .put("clips/x/thumbnail.jpg", Bytes::from(vec![0; 24]))
        .await
        .unwrap();
    store
        .put("clips/y/clip.mp4", Bytes::from(vec![0; 7]))
        .await
        .unwrap();

    let mut listed = store.list("clips/x").await.unwrap();
    listed.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(
        listed,
        [
            StoredObject {
                key: "clips/x/clip.mp4".into(),
                size: 1000
            },
            StoredObject {
                key: "clips/x/thumbnail.jpg".into(),
                size: 24
            },
        ]
    );
    assert_eq!(store.size_of_prefix("clips/x").await.unwrap(), 1024);
    assert_eq!(store.size_of_prefix("clips").await.unwrap(), 1031);
    assert_eq!(store.size_of_prefix("clips/none").await.unwrap(), 0);
}

/// Writes `files` (relative path, content) under `dir`.
fn write_tree(dir: &Path, files: &[(&str, &[u8])]) {
    for (path, content) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
}

async fn upload_dir_and_download_prefix_round_trip(store: MediaStore) {
    let files: &[(&str, &[u8])] = &[
        ("master.m3u8", b"#EXTM3U\n360p/index.m3u8\n"),
        ("thumbnail.jpg", b"jpeg"),
        ("360p/index.m3u8", b"#EXTM3U\nseg_00000.ts\n"),
        ("360p/seg_00000.ts", b"segment zero"),
        ("720p/seg_00000.ts", b"segment"),
    ];
    let source = tempfile::tempdir().unwrap();
    write_tree(source.path(), files);

    let total = store.upload_dir(source.path(), "vod/a/v1").await.unwrap();
    let expected: usize = files.iter().map(|(_, content)| content.len()).sum();
    assert_eq!(total, expected as u64);
    assert_eq!(store.size_of_prefix("vod/a/v1").await.unwrap(), total);
    assert_eq!(
        store
            .get("vod/a/v1/360p/seg_00000.ts")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"segment zero"[..])
    );

    let copy = tempfile::tempdir().unwrap();
    let written = store
        .download_prefix("vod/a/v1", copy.path())
        .await
        .unwrap();
    assert_eq!(written, total);
    for (path, content) in files {
        assert_eq!(
            std::fs::read(copy.path().join(path)).unwrap(),
            *content,
            "{path}"
        );
    }
    // An empty prefix copies nothing; a missing directory is an I/O error.
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        store
            .download_prefix("vod/none", empty.path())
            .await
            .unwrap(),
        0
    );
    let missing = store
        .upload_dir(&source.path().join("none"), "vod/b/v1")
        .await;
    assert!(
        matches!(missing, Err(MediaStoreError::Io { .. })),
        "{missing:?}"
    );
}
