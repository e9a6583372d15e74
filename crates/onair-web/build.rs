//! Builds the web UI (`web/`, Vite + TypeScript) into OUT_DIR and generates the table of
//! embedded files, so `cargo run` serves the UI on a fresh machine. `npm ci` runs when
//! `node_modules` is missing or older than the lockfile; the build reruns whenever the
//! sources change. Without npm the binary still builds and serves a page saying how to
//! get the UI (a warning says so at build time).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

const WATCHED: &[&str] = &[
    "src",
    "public",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
    "tsconfig.node.json",
    "tests",
    "playwright.config.ts",
];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let web = manifest.join("../../web");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    for file in WATCHED {
        println!("cargo:rerun-if-changed={}", web.join(file).display());
    }
    let dist = out.join("dist");
    let built = match build(&web, &dist) {
        Ok(()) => true,
        Err(Missing::Npm) => {
            println!(
                "cargo:warning=npm not found: the web UI is not built (install Node 20+ and npm, then rebuild)"
            );
            false
        }
    };
    let table = if built {
        embed(&dist)
    } else {
        "pub static INDEX_HTML: Option<Asset> = None;\npub static ASSETS: &[Asset] = &[];\npub static ROOT_FILES: &[Asset] = &[];\n"
            .to_owned()
    };
    std::fs::write(out.join("assets.rs"), table).expect("OUT_DIR is writable");
}

enum Missing {
    Npm,
}

fn build(web: &Path, dist: &Path) -> Result<(), Missing> {
    if Command::new("npm").arg("--version").output().is_err() {
        return Err(Missing::Npm);
    }
    let lock = modified(&web.join("package-lock.json"));
    let installed = modified(&web.join("node_modules/.package-lock.json"));
    if installed.is_none() || installed < lock {
        npm(web, &["ci", "--no-audit", "--no-fund"]);
    }
    let out_dir = dist.to_str().expect("OUT_DIR is UTF-8");
    npm(
        web,
        &["run", "build", "--", "--outDir", out_dir, "--emptyOutDir"],
    );
    Ok(())
}

fn npm(web: &Path, args: &[&str]) {
    let status = Command::new("npm")
        .args(args)
        .current_dir(web)
        // The UI tests drive the system's Chromium; never download browsers.
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .status()
        .expect("npm runs");
    assert!(
        status.success(),
        "`npm {}` failed in {}",
        args.join(" "),
        web.display()
    );
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// `INDEX_HTML`, one `Asset` per file under `dist/assets` (`ASSETS`) and one per other
/// file, copied by Vite from `web/public/` (`ROOT_FILES`). The `.br`/`.gz` files that
/// `vite.config.ts` writes beside them are their variants, not files of their own.
fn embed(dist: &Path) -> String {
    let mut files = Vec::new();
    walk(dist, &mut files);
    files.retain(|file| !file.extension().is_some_and(|e| e == "br" || e == "gz"));
    files.sort();
    let index = dist.join("index.html");
    let mut assets = String::new();
    let mut root_files = String::new();
    for file in files.iter().filter(|f| **f != index) {
        let relative = file.strip_prefix(dist).expect("under dist");
        let url = relative
            .components()
            .map(|c| c.as_os_str().to_str().expect("UTF-8 names"))
            .fold(String::new(), |url, part| url + "/" + part);
        let table = if relative.starts_with("assets") {
            &mut assets
        } else {
            &mut root_files
        };
        writeln!(table, "    {},", entry(&url, file)).expect("writing to a String");
    }
    format!(
        "pub static INDEX_HTML: Option<Asset> = Some({});\n\
         pub static ASSETS: &[Asset] = &[\n{assets}];\n\
         pub static ROOT_FILES: &[Asset] = &[\n{root_files}];\n",
        entry("/", &index)
    )
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("vite wrote dist") {
        let path = entry.expect("readable dist").path();
        if path.is_dir() {
            walk(&path, files);
        } else {
            files.push(path);
        }
    }
}

/// The `Asset` for `file`, served at `url`, with whichever compressed variants exist.
fn entry(url: &str, file: &Path) -> String {
    let variant = |extension: &str| {
        let mut name = file.as_os_str().to_owned();
        name.push(format!(".{extension}"));
        let path = PathBuf::from(name);
        if path.exists() {
            format!("Some(include_bytes!({path:?}))")
        } else {
            "None".to_owned()
        }
    };
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .expect("UTF-8 names");
    format!(
        "Asset {{ path: {url:?}, content_type: {:?}, body: include_bytes!({file:?}), br: {}, gzip: {} }}",
        content_type(name),
        variant("br"),
        variant("gz"),
    )
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("ico") => "image/x-icon",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        _ => "application/octet-stream",
    }
}
