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
        "pub static INDEX_HTML: Option<&[u8]> = None;\npub static ASSETS: &[Asset] = &[];\n"
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

/// `INDEX_HTML` and one `Asset` per file under `dist/assets`.
fn embed(dist: &Path) -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dist.join("assets"))
        .expect("vite wrote dist/assets")
        .map(|entry| entry.expect("readable dist/assets").path())
        .collect();
    files.sort();
    let mut table = format!(
        "pub static INDEX_HTML: Option<&[u8]> = Some(include_bytes!({:?}));\npub static ASSETS: &[Asset] = &[\n",
        dist.join("index.html")
    );
    for file in files {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .expect("UTF-8 names");
        writeln!(
            table,
            "    Asset {{ path: {:?}, content_type: {:?}, body: include_bytes!({:?}) }},",
            format!("/assets/{name}"),
            content_type(name),
            file
        )
        .expect("writing to a String");
    }
    table.push_str("];\n");
    table
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}
