//! The services the scale-out tests share, as `.ci/services.sh` exports
//! them: PostgreSQL (`CDS_TEST_POSTGRES_URL`) and Redis
//! (`CDS_TEST_REDIS_URL`). A test without its service says it was skipped
//! and passes.

/// The value of the environment variable `var`, or `None` (unset or empty)
/// after saying that `test` is skipped and what to set.
fn service_url(test: &str, var: &str, example: &str) -> Option<String> {
    let url = std::env::var(var).ok().filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("{test}: skipped: {var} is not set (e.g. {example}; .ci/services.sh sets it)");
    }
    url
}

/// The PostgreSQL of the tests, or `None` after saying why `test` is
/// skipped.
pub fn postgres_url(test: &str) -> Option<String> {
    service_url(
        test,
        "CDS_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/test",
    )
}

/// The Redis of the tests, or `None` after saying why `test` is skipped.
pub fn redis_url(test: &str) -> Option<String> {
    service_url(test, "CDS_TEST_REDIS_URL", "redis://127.0.0.1:6379")
}

/// A schema name no other test or run uses: `prefix`, `test`, this
/// process and the time.
pub fn unique_schema(prefix: &str, test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}_{test}_{}_{nanos}", std::process::id())
}
