//! The README's client example is the crate's front-page example, which
//! runs as a doctest against an in-process server: this keeps the copy in
//! the README from drifting away from the tested one.

/// The lines a reader sees of the first code block of the crate's front
/// page (rustdoc hides lines starting with `# `).
fn front_page_example() -> Vec<String> {
    let lib = include_str!("../src/lib.rs");
    let doc: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    let start = doc
        .iter()
        .position(|l| l.starts_with("```"))
        .expect("the front page has an example");
    doc[start + 1..]
        .iter()
        .take_while(|l| !l.starts_with("```"))
        .filter(|l| !(l.starts_with("# ") || **l == "#"))
        .map(|l| l.to_string())
        .collect()
}

/// The Rust block of the README's "Use the client library" section.
fn readme_example() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## Use the client library")
        .nth(1)
        .expect("the README has the section");
    let block = section
        .split("```rust")
        .nth(1)
        .expect("the section has a Rust block");
    block
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .map(|l| l.to_string())
        .collect()
}

#[test]
fn the_readme_shows_the_front_page_example_that_runs_as_a_doctest() {
    let front = front_page_example();
    assert!(
        front.iter().any(|l| l.contains(".credential(")),
        "the example passes a credential"
    );
    assert!(front.iter().any(|l| l.contains("QuotaExceeded")));
    assert!(front.iter().any(|l| l.contains("to_bytes()")));
    assert_eq!(
        readme_example(),
        front,
        "README.md's client example differs from client/src/lib.rs's: copy the visible lines over"
    );
}
