//! The web UI's built files, embedded in the binary: the single HTML page every client
//! route answers with, the content-hashed assets it loads, and the files served from the
//! site root (`web/public/`, e.g. the service worker). Built from `web/` by `build.rs`
//! (Vite + TypeScript + Preact; see the README), each text file with its brotli and gzip
//! variants made at build time.

/// A built file, as it is and precompressed.
#[derive(Debug)]
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
    /// Brotli-compressed `body`, when that is smaller.
    pub br: Option<&'static [u8]>,
    /// Gzip-compressed `body`, when that is smaller.
    pub gzip: Option<&'static [u8]>,
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The page (`None` when the build machine had no npm).
pub fn index_html() -> Option<&'static Asset> {
    INDEX_HTML.as_ref()
}

/// The asset at `path` (`/assets/…`); its name carries a content hash.
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// The files served at the site root under their own names (`/sw.js`): their names carry
/// no hash, so they are always revalidated.
pub fn root_files() -> &'static [Asset] {
    ROOT_FILES
}
