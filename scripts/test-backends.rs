//! Build script of the crates whose tests need PostgreSQL, Redis or an S3-compatible
//! server (`build = …` in their manifests). It turns the test variables into cfgs, so
//! that a backend test whose service is not configured is compiled `#[ignore]`d and
//! counted as "ignored" in libtest's closing line instead of passing without running
//! (`onair_store::backend_tests!`).
//! Changing any of the variables rebuilds these crates once.

const SERVICES: [(&str, &str); 3] = [
    ("ONAIR_TEST_POSTGRES_URL", "onair_test_postgres"),
    ("ONAIR_TEST_REDIS_URL", "onair_test_redis"),
    // The `moto_server` program (onair_infra::testing::MotoS3 starts one per test).
    ("ONAIR_TEST_MOTO_SERVER", "onair_test_s3"),
];

fn main() {
    for (variable, cfg) in SERVICES {
        println!("cargo::rerun-if-env-changed={variable}");
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        // An empty value means unset, as it does to the tests that read the URL.
        if std::env::var_os(variable).is_some_and(|url| !url.is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
