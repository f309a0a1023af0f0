//! The `lagom` binary: configuration layering and errors, `lagom sim` outputs and determinism,
//! shell completions and the manual page.

mod cli_support;
use cli_support::{lagom, stderr, stdout, summary};

#[test]
fn an_unknown_key_exits_2_and_names_the_key_and_its_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[algorithm]\nname = \"ormo\"\nlearning_rate = 0.1\n").expect("write");
    let out = lagom(&["sim", "--config", file.to_str().expect("utf-8")], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("algorithm.learning_rate"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("bad.toml"), "{}", stderr(&out));

    let out = lagom(&["config"], &[("LAGOM_SIM__UPDATEZ", "5")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("sim.updatez"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("LAGOM_SIM__UPDATEZ"),
        "{}",
        stderr(&out)
    );

    let out = lagom(&["config", "--config", "does/not/exist.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does/not/exist.toml"));

    // A timeout too long to be a duration is refused up front, not a panic at start-up.
    let out = lagom(
        &["config"],
        &[("LAGOM_NET__HEARTBEAT_TIMEOUT_S", "99999999999999999999.0")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("net.heartbeat_timeout_s") && stderr(&out).contains("at most"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn environment_overrides_the_file_and_flags_override_the_environment() {
    let file = "config/sim-quadratic.toml";
    let from_file = stdout(&lagom(&["config", "--config", file], &[]));
    assert!(from_file.contains("lr = 0.01"), "{from_file}");
    let env = [
        ("LAGOM_ALGORITHM__LR", "0.05"),
        ("LAGOM_CLUSTER__WORKERS", "3"),
    ];
    let from_env = stdout(&lagom(&["config", "--config", file], &env));
    assert!(from_env.contains("lr = 0.05"), "{from_env}");
    assert!(from_env.contains("workers = 3"), "{from_env}");
    let from_flag = stdout(&lagom(
        &[
            "config",
            "--config",
            file,
            "--lr",
            "0.2",
            "--set",
            "cluster.workers=5",
        ],
        &env,
    ));
    assert!(from_flag.contains("lr = 0.2"), "{from_flag}");
    assert!(from_flag.contains("workers = 5"), "{from_flag}");
}

#[test]
fn sim_writes_both_files_with_the_common_fields_for_every_algorithm() {
    let names = [
        "asgd",
        "ssgd",
        "ssgdm",
        "naive-asgdm",
        "shifted-momentum",
        "smega2",
        "ormo",
        "ormo-da",
        "dcasgd",
    ];
    for name in names {
        let dir = tempfile::tempdir().expect("tempdir");
        let run_dir = dir.path().join("run");
        let out = lagom(
            &[
                "sim",
                "--config",
                "config/sim-quadratic.toml",
                "--run-dir",
                run_dir.to_str().expect("utf-8"),
            ],
            &[
                ("LAGOM_ALGORITHM__NAME", name),
                ("LAGOM_SIM__UPDATES", "1600"),
            ],
        );
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let s = summary(&run_dir);
        assert_eq!(s["algorithm"], name);
        assert_eq!(s["workers"], 16);
        for key in [
            "updates",
            "wall_s",
            "final_loss",
            "diverged",
            "staleness",
            "per_worker",
        ] {
            assert!(s.get(key).is_some(), "{name}: summary lacks {key}");
        }
        for key in ["mean", "p50", "p99", "max"] {
            assert!(
                s["staleness"].get(key).is_some(),
                "{name}: staleness lacks {key}"
            );
        }
        let per_worker = s["per_worker"].as_array().expect("array");
        assert_eq!(per_worker.len(), 16);
        for key in ["id", "gradients", "mean_staleness", "speed"] {
            assert!(
                per_worker[0].get(key).is_some(),
                "{name}: per_worker lacks {key}"
            );
        }
        let applied: u64 = per_worker
            .iter()
            .map(|w| w["gradients"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(
            Some(applied),
            s["updates"].as_u64(),
            "{name}: per-worker counts add up"
        );
        let metrics =
            std::fs::read_to_string(run_dir.join("metrics.jsonl")).expect("metrics.jsonl");
        let events: Vec<serde_json::Value> = metrics
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        assert!(events.len() > 2);
        for e in &events {
            assert!(
                e.get("event").is_some() && e.get("t_s").is_some() && e.get("updates").is_some(),
                "{e}"
            );
        }
        assert_eq!(
            events.last().map(|e| e["event"].clone()),
            Some("end".into())
        );
    }
}

#[test]
fn the_same_seed_gives_byte_identical_outputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |sub: &str, seed: &str| {
        let path = dir.path().join(sub);
        let out = lagom(
            &[
                "sim",
                "--config",
                "config/sim-quadratic.toml",
                "--run-dir",
                path.to_str().expect("utf-8"),
                "--seed",
                seed,
            ],
            &[("LAGOM_SIM__UPDATES", "3000")],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let read = |f: &str| std::fs::read(path.join(f)).expect("file");
        (read("summary.json"), read("metrics.jsonl"))
    };
    let a = run("a", "11");
    let b = run("b", "11");
    let c = run("c", "12");
    assert_eq!(a, b, "same seed, same bytes");
    assert_ne!(a.0, c.0, "another seed gives another run");
}

#[test]
fn completions_and_the_manual_page_cover_every_command_and_flag() {
    for shell in ["bash", "zsh", "fish"] {
        let out = lagom(&["completions", shell], &[]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let script = stdout(&out);
        for word in ["sim", "certs", "completions", "log-format", "role"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    let out = lagom(&["completions", "tcsh"], &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
    let out = lagom(&["man"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let page = stdout(&out);
    assert!(page.contains(".TH lagom 1"), "{page}");
    assert!(
        page.contains("log\\-format") || page.contains("log-format"),
        "{page}"
    );
}

#[test]
fn the_binary_restarts_itself_onto_a_huge_page_heap_unless_told_not_to() {
    let mode =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    let glibc_linux = cfg!(all(target_os = "linux", target_env = "gnu"));
    // `lagom config` with debug logs, the heap variables as given (none inherited from here).
    let run = |env: &[(&str, &str)]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_lagom"))
            .args(["config", "--log-level", "debug"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("GLIBC_TUNABLES")
            .env_remove("LAGOM_HUGE_PAGES")
            .envs(env.iter().copied())
            .output()
            .expect("lagom runs");
        assert!(out.status.success(), "{}", stderr(&out));
        stderr(&out)
    };
    let log = run(&[]);
    if glibc_linux && mode.contains("[madvise]") {
        // Huge pages only on request here: the process asked for them, by restarting itself.
        assert!(
            log.contains("heap: transparent huge pages, asked for (GLIBC_TUNABLES)"),
            "{log}"
        );
    } else {
        assert!(!log.contains("asked for (GLIBC_TUNABLES)"), "{log}");
    }
    // LAGOM_HUGE_PAGES=0 keeps ordinary pages (and is not read as a configuration key).
    let log = run(&[("LAGOM_HUGE_PAGES", "0")]);
    assert!(!log.contains("asked for (GLIBC_TUNABLES)"), "{log}");
    if mode.contains("[madvise]") {
        assert!(
            log.contains("heap: ordinary pages (LAGOM_HUGE_PAGES=0)"),
            "{log}"
        );
    }
    // A user's own glibc setting wins: no restart that would override it.
    let log = run(&[("GLIBC_TUNABLES", "glibc.malloc.hugetlb=0")]);
    assert!(!log.contains("asked for (GLIBC_TUNABLES)"), "{log}");
}
