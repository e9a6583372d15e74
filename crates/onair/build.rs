//! The browser tests (tests/browser.rs) need Debian's Chromium; without it they are
//! reported as ignored, with the reason, rather than passing.

fn main() {
    const CHROMIUM: &str = "/usr/bin/chromium";
    println!("cargo::rustc-check-cfg=cfg(no_chromium)");
    println!("cargo::rerun-if-changed={CHROMIUM}");
    println!("cargo::rerun-if-env-changed=CHROMIUM_PATH");
    let path = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| CHROMIUM.to_owned());
    if !std::path::Path::new(&path).exists() {
        println!("cargo::rustc-cfg=no_chromium");
    }
}
