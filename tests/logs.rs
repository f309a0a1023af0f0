//! Log output as operators read it: JSON lines that parse, from the server, the supervisor and
//! the workers alike; plain text without colour escapes when standard error is not a terminal;
//! the level from `LAGOM_LOG_LEVEL` (not mistaken for a configuration key); the final
//! evaluation logged once.

mod cli_support;
use cli_support::{lagom, local_mlp_args, stderr};

/// A short `--role local` run (2 workers, the `mlp` on the synthetic set, evaluations at 30 and
/// 60 updates) with `extra` flags and `env`; its standard error.
fn local_run(extra: &[&str], env: &[(&str, &str)]) -> String {
    let run = tempfile::tempdir().expect("run dir");
    let mut flags = vec![
        "--set",
        "server.updates=60",
        "--set",
        "server.eval_every=30",
    ];
    flags.extend_from_slice(extra);
    let args = local_mlp_args(run.path(), &flags);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = lagom(&args, env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stderr(&out)
}

#[test]
fn json_logs_are_one_object_per_line_from_every_process_and_the_final_evaluation_once() {
    let log = local_run(&["--log-format", "json"], &[]);
    let mut targets = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        for field in ["timestamp", "level", "target", "message"] {
            assert!(v.get(field).is_some(), "no {field} in {line}");
        }
        targets.push(v["target"].as_str().unwrap_or_default().to_string());
    }
    for origin in [
        "lagom::node::server",
        "lagom::supervisor",
        "lagom::node::worker",
    ] {
        assert!(
            targets.iter().any(|t| t.starts_with(origin)),
            "no line from {origin}: {targets:?}"
        );
    }
    let finals = log
        .lines()
        .filter(|l| l.contains("update 60: test accuracy"))
        .count();
    assert_eq!(finals, 1, "{log}");
}

#[test]
fn text_logs_to_a_pipe_have_no_escapes_and_the_level_comes_from_the_environment() {
    let log = local_run(&[], &[]);
    assert!(log.contains(" INFO "), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour escapes in a piped log: {log}"
    );
    let quiet = local_run(&[], &[("LAGOM_LOG_LEVEL", "warn")]);
    assert!(!quiet.contains(" INFO "), "{quiet}");
    let out = lagom(&["--log-level", "no=such=level", "config"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--log-level"), "{}", stderr(&out));
}

#[test]
fn with_json_logs_a_fatal_error_is_a_json_line_too() {
    let out = lagom(
        &[
            "--log-format",
            "json",
            "config",
            "--config",
            "does/not/exist.toml",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let log = stderr(&out);
    let line = log.lines().find(|l| !l.trim().is_empty()).expect("a line");
    let v: serde_json::Value = serde_json::from_str(line).expect("the error is a JSON line");
    assert_eq!(v["level"], "ERROR", "{line}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("does/not/exist.toml"),
        "{line}"
    );
    let text = lagom(&["config", "--config", "does/not/exist.toml"], &[]);
    assert!(stderr(&text).starts_with("lagom: "), "{}", stderr(&text));
}
