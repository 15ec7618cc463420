//! Project automation (`cargo xtask …`): the whole test suite and the tools it needs.
//!
//! `cargo xtask test` is the one command that passes the tests on a fresh
//! machine: it creates the Python virtual environment with the OASIS tools the
//! end-to-end suite drives the node with, builds the workspace, runs every
//! Rust test, then the end-to-end suite against the real `anyam` binary.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    match args.first().map(String::as_str) {
        Some("test") => test(&root),
        Some("venv") => venv(&root).map(|_| ()),
        _ => {
            eprintln!("usage: cargo xtask <test|venv>");
            eprintln!(
                "  test  create the Python venv, run every Rust test and the end-to-end suite"
            );
            eprintln!("  venv  only create or refresh the Python venv (.venv)");
            std::process::exit(2);
        }
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Create `.venv` (if needed) and install the pinned test requirements into
/// it. Returns the path of its Python interpreter.
fn venv(root: &Path) -> Result<PathBuf> {
    let venv = root.join(".venv");
    let python = venv.join("bin/python");
    let reqs = root.join("tests/e2e/requirements.txt");
    let stamp = venv.join(".requirements");
    let wanted = std::fs::read_to_string(&reqs).context("reading tests/e2e/requirements.txt")?;
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(python);
    }
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv)).context(
            "python3 -m venv failed; on Debian install it with: apt-get install -y python3-venv",
        )?;
    }
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&reqs))?;
    std::fs::write(&stamp, wanted)?;
    Ok(python)
}

fn test(root: &Path) -> Result<()> {
    let python = venv(root)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // The binaries and the tests are built in one invocation, so that they
    // share one feature resolution: built apart, the dev-dependencies' features
    // made cargo compile many dependencies twice. A clean run on a CI machine
    // (`CI` set) also skips incremental data, which only helps rebuilds.
    let clean_run = std::env::var_os("CI").is_some();
    let cargo_cmd = |args: &[&str]| {
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(root).args(args);
        if clean_run {
            cmd.env("CARGO_INCREMENTAL", "0");
        }
        cmd
    };
    run(&mut cargo_cmd(&[
        "build",
        "--workspace",
        "--bins",
        "--tests",
    ]))?;
    run(cargo_cmd(&["test", "--workspace", "--no-fail-fast"]).env("ANYAM_PYTHON", &python))?;
    let has_e2e = std::fs::read_dir(root.join("tests/e2e"))?
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with("test_"));
    if !has_e2e {
        eprintln!("xtask: tests/e2e holds no test_*.py yet; end-to-end suite not run");
        return Ok(());
    }
    run(Command::new(&python)
        .current_dir(root)
        .env("ANYAM_BIN", root.join("target/debug/anyam"))
        .args(["-m", "pytest", "-q", "tests/e2e"]))?;
    Ok(())
}
