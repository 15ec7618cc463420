//! Finding the reference Python environment (the OASIS packages in a venv).

use std::path::PathBuf;

/// The interpreter: `ANYAM_PYTHON`, else `<workspace>/.venv/bin/python`.
/// Panics with a clear message when neither exists: these tests never pass
/// silently without the reference.
pub fn interpreter() -> PathBuf {
    if let Some(p) = std::env::var_os("ANYAM_PYTHON") {
        let p = PathBuf::from(p);
        assert!(p.exists(), "ANYAM_PYTHON={} does not exist", p.display());
        return p;
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        venv.exists(),
        "the reference Python environment is missing: set ANYAM_PYTHON or run `cargo xtask venv` \
         (expected {})",
        venv.display()
    );
    venv
}

/// A script of `tests/reference/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/reference")
        .join(name)
}
