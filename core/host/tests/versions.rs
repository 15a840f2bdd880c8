//! One version for every package: the workspace's (every crate inherits it), the npm
//! package's, the Python package's (maturin takes it from its crate), the C header's.

use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn every_package_has_the_workspace_version() {
    let version = env!("CARGO_PKG_VERSION");
    for krate in [
        "core/Cargo.toml",
        "bindings-c/Cargo.toml",
        "bindings-node/Cargo.toml",
        "bindings-python/Cargo.toml",
    ] {
        let text = read(krate);
        assert!(
            text.contains("version.workspace = true"),
            "{krate} must inherit the workspace version"
        );
    }
    let npm = read("bindings-node/package.json");
    assert!(
        npm.contains(&format!("\"version\": \"{version}\"")),
        "bindings-node/package.json is not at {version}"
    );
    let pyproject = read("bindings-python/pyproject.toml");
    assert!(
        pyproject.contains("dynamic = [\"version\"]"),
        "the Python package must take its version from its crate"
    );
    let header = read("bindings-c/include/aisoule_ratelimit.h");
    assert!(
        header.contains(&format!("\"{version}\"")),
        "the C header's version string is not {version}"
    );
    let lock = read("bindings-node/package-lock.json");
    assert!(
        lock.contains(&format!("\"version\": \"{version}\"")),
        "package-lock.json is not at {version}"
    );
}
