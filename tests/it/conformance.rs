//! The external conformance suite scim2-tester (PyPI, pinned in
//! `tests/conformance/requirements.txt`) against a freshly started daemon: every check must
//! pass, none may be skipped.
//!
//! `scripts/test.sh` installs the suite into `target/conformance-venv`. Without it a plain
//! `cargo test` prints a loud `skipped:` line; with `CI=true` the test fails instead.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::TestApp;

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("ROLLCALL_CONFORMANCE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/conformance-venv")
        });
    venv.join("bin/python")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim2_tester_passes_every_check() {
    let python = venv_python();
    let ready = Command::new(&python)
        .args(["-c", "import scim2_tester"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !ready {
        let message = format!(
            "scim2-tester is not installed at {} (scripts/test.sh installs it)",
            python.display()
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message}");
        }
        eprintln!("skipped: {message}");
        return;
    }
    let app = TestApp::start().await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/run_tester.py");
    // As `south`, which has no course catalogue: the suite fills the school extension's
    // `courses` with random codes, which a school with a catalogue refuses (tests/it/courses.rs).
    let (scim, token) = (app.scim.clone(), app.other_token.clone());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("BASE_URL", scim)
            .env("TOKEN", token)
            .output()
    })
    .await
    .expect("join")
    .expect("run scim2-tester");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("conformance:"))
        .unwrap_or("");
    println!("{summary}");
    let problems: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.starts_with("SUCCESS") && !l.starts_with("conformance:"))
        .collect();
    assert!(
        output.status.success() && summary.contains(" 0 failed, 0 skipped"),
        "scim2-tester: {summary}\n{}\n{stderr}",
        problems.join("\n")
    );
    app.stop().await;
}
