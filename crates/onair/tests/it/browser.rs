//! The web UI in a real browser: runs the Playwright suite in `web/` (Debian's Chromium,
//! headless) against this `onair` binary, and fails when any browser test fails.

use std::path::Path;
use std::process::Command;

#[test]
#[cfg_attr(
    no_chromium,
    ignore = "Chromium is not installed (bash scripts/setup installs it); browser tests not run"
)]
fn web_ui_in_chromium() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    assert!(
        web.join("node_modules/@playwright/test").exists(),
        "web/node_modules is missing: the build runs `npm ci` there; run it by hand if it failed"
    );
    let status = Command::new("npx")
        .args(["--no-install", "playwright", "test"])
        .current_dir(&web)
        .env("ONAIR_TEST_UI_BIN", env!("CARGO_BIN_EXE_onair"))
        .status()
        .expect("npx runs (Node.js and npm are needed to build OnAir)");
    assert!(
        status.success(),
        "browser tests failed (see the output above)"
    );
}
