//! The binary: a table and exit 0 on success; a one-line error and exit 2 on bad flags.

use std::process::Command;

#[test]
fn a_passing_run_prints_its_seed_and_table() {
    let out = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(["--scenario", "crash", "--agents", "3", "--seed", "5", "--quiet"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("seed 5\n"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("crash ") && l.ends_with(" ok")), "{stdout}");
}

#[test]
fn an_unknown_scenario_is_one_line_and_exit_code_2() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_sim")).args(["--scenario", "flood"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("sim: unknown scenario \"flood\""), "{err}");
}
