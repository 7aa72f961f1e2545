//! The Python 3 that tests run independent checkers with.

use std::process::Command;

/// A Python 3 that can import every module in `modules` (space-separated):
/// `$VITALGATE_PYTHON` when set, else `python3` on the PATH, else
/// `/usr/bin/python3` (where Debian's packages install them when the
/// PATH's `python3` is another interpreter, such as a pyenv or virtualenv
/// one). Never skips: without one the test fails and says which Debian
/// packages `.ci/run` installs (`debian_packages`).
pub fn with_modules(modules: &str, debian_packages: &str) -> String {
    let candidates: Vec<String> = match std::env::var("VITALGATE_PYTHON") {
        Ok(p) => vec![p],
        Err(_) => vec!["python3".into(), "/usr/bin/python3".into()],
    };
    let import = format!(
        "import {}",
        modules.split_whitespace().collect::<Vec<_>>().join(", ")
    );
    for candidate in &candidates {
        let ok = Command::new(candidate)
            .args(["-c", &import])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return candidate.clone();
        }
    }
    panic!(
        "no Python 3 with the modules {modules} (tried {candidates:?}); \
         .ci/run installs them (apt-get install {debian_packages})"
    );
}
