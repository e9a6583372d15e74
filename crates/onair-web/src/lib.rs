//! The web UI's built files, embedded in the binary: the single HTML page every client
//! route answers with, and the content-hashed assets it loads. Built from `web/` by
//! `build.rs` (Vite + TypeScript + Preact; see the README).

/// A built file under `/assets/`; its name carries a content hash.
#[derive(Debug)]
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The page (`None` when the build machine had no npm).
pub fn index_html() -> Option<&'static [u8]> {
    INDEX_HTML
}

/// The asset at `path` (`/assets/…`).
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}
