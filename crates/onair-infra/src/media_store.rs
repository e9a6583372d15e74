//! Where HLS and uploaded avatars are stored and served from: an object store (the
//! `object_store` crate) — a local directory by default, S3 or any S3-compatible service
//! in scale-out. ffmpeg always writes HLS to a local spool directory; when the store is
//! not that directory, the ingest mirrors finished files into it.

use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

#[derive(Debug, thiserror::Error)]
pub enum MediaStoreError {
    #[error("OBJECT_STORE_URL: {0}")]
    Config(String),
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
}

#[derive(Debug, Clone)]
pub struct MediaStore {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// True when the store is the spool directory itself: nothing to copy.
    is_spool: bool,
}

impl MediaStore {
    /// `url`: none for the spool directory itself; `file:///dir`, `s3://bucket/prefix`
    /// (credentials and endpoint from the standard `AWS_*` variables) or `memory://`.
    pub fn open(url: Option<&str>, spool: &FsPath) -> Result<Self, MediaStoreError> {
        let Some(raw) = url else {
            std::fs::create_dir_all(spool).map_err(|e| MediaStoreError::Config(e.to_string()))?;
            return Ok(Self {
                store: Arc::new(LocalFileSystem::new_with_prefix(spool)?),
                prefix: Path::default(),
                is_spool: true,
            });
        };
        let url =
            url::Url::parse(raw).map_err(|e| MediaStoreError::Config(format!("{raw}: {e}")))?;
        let prefix =
            Path::parse(url.path().trim_start_matches('/')).map_err(object_store::Error::from)?;
        let store: Arc<dyn ObjectStore> = match url.scheme() {
            "file" => {
                std::fs::create_dir_all(url.path())
                    .map_err(|e| MediaStoreError::Config(e.to_string()))?;
                return Ok(Self {
                    store: Arc::new(LocalFileSystem::new_with_prefix(url.path())?),
                    prefix: Path::default(),
                    is_spool: false,
                });
            }
            "s3" => Arc::new(AmazonS3Builder::from_env().with_url(raw).build()?),
            "memory" => Arc::new(InMemory::new()),
            other => {
                return Err(MediaStoreError::Config(format!(
                    "unsupported scheme {other}: use file, s3 or memory"
                )));
            }
        };
        Ok(Self {
            store,
            prefix,
            is_spool: false,
        })
    }

    /// Whether files written to the spool are already in the store.
    pub fn is_spool(&self) -> bool {
        self.is_spool
    }

    fn location(&self, key: &str) -> Result<Path, MediaStoreError> {
        let key = Path::parse(key).map_err(object_store::Error::from)?;
        Ok(self.prefix.parts().chain(key.parts()).collect())
    }

    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), MediaStoreError> {
        self.store
            .put(&self.location(key)?, PutPayload::from(bytes))
            .await?;
        Ok(())
    }

    /// Removes the object; one that is not there is no error.
    pub async fn delete(&self, key: &str) -> Result<(), MediaStoreError> {
        match self.store.delete(&self.location(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The object's bytes, or None if there is no such object.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, MediaStoreError> {
        match self.store.get(&self.location(key)?).await {
            Ok(result) => Ok(Some(result.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn spool_and_memory_stores() {
        let dir = std::env::temp_dir().join(format!("onair-media-store-{}", uuid::Uuid::new_v4()));
        let spool = MediaStore::open(None, &dir).unwrap();
        assert!(spool.is_spool());
        std::fs::create_dir_all(dir.join("live/x")).unwrap();
        std::fs::write(dir.join("live/x/master.m3u8"), "#EXTM3U").unwrap();
        assert_eq!(
            spool.get("live/x/master.m3u8").await.unwrap().as_deref(),
            Some(&b"#EXTM3U"[..])
        );
        assert_eq!(spool.get("live/x/none.ts").await.unwrap(), None);
        spool.delete("live/x/master.m3u8").await.unwrap();
        assert_eq!(spool.get("live/x/master.m3u8").await.unwrap(), None);
        spool.delete("live/x/master.m3u8").await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();

        let memory = MediaStore::open(Some("memory:///media"), &dir).unwrap();
        assert!(!memory.is_spool());
        memory
            .put("live/y/seg.ts", Bytes::from_static(b"ts"))
            .await
            .unwrap();
        assert_eq!(
            memory.get("live/y/seg.ts").await.unwrap().as_deref(),
            Some(&b"ts"[..])
        );
        memory.delete("live/y/seg.ts").await.unwrap();
        assert_eq!(memory.get("live/y/seg.ts").await.unwrap(), None);
        memory.delete("live/y/seg.ts").await.unwrap();
        assert!(MediaStore::open(Some("ftp://x/y"), &dir).is_err());
    }
}
