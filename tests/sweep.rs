//! `lagom sweep`: a grid runs to results.csv and table.md; the tuned value is the best per cell;
//! an interrupted sweep resumes without redoing finished runs; a bad grid is refused, naming the
//! key, before anything runs.

mod cli_support;
use cli_support::{lagom, stderr, stdout};

use std::path::Path;
use std::time::{Duration, Instant};

const BASE: &str = r#"
[algorithm]
name = "asgd"
lr = 0.01
momentum = 0.9
[cluster]
workers = 4
[sim]
objective = "quadratic"
updates = 3000
eval_every = 100
[sim.quadratic]
dim = 8
noise = 0.1
"#;

fn write_grid(dir: &Path, grid: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("base.toml"), BASE).unwrap();
    let path = dir.join("grid.toml");
    std::fs::write(&path, grid).unwrap();
    path
}

/// results.csv as rows of named fields.
fn rows(out: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(out.join("results.csv")).expect("results.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    lines
        .map(|l| {
            header
                .iter()
                .zip(l.split(','))
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

#[test]
fn a_grid_runs_to_results_and_a_table_with_the_best_tuned_value_per_cell() {
    let dir = tempfile::tempdir().unwrap();
    let grid = write_grid(
        dir.path(),
        r#"
base = "base.toml"
target_loss = 0.05
[axes]
"algorithm.name" = ["asgd", "ormo"]
"run.seed" = [1, 2]
[variants.setting]
homogeneous = { "heterogeneity.slow_fraction" = 0.0 }
heterogeneous = { "heterogeneity.slow_fraction" = 0.25, "heterogeneity.slowdown" = 4.0 }
[tune]
key = "algorithm.lr"
values = [0.001, 0.01, 0.05]
by = "final_loss"
"#,
    );
    let out = dir.path().join("out");
    let o = lagom(
        &[
            "sweep",
            "--config",
            grid.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--jobs",
            "2",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("24 runs: 24 done now, 0 done before, 0 failed"),
        "{}",
        stdout(&o)
    );
    let rows = rows(&out);
    assert_eq!(rows.len(), 24);
    for r in &rows {
        assert_eq!(r["status"], "ok", "{r:?}");
        let loss: f64 = r["final_loss"].parse().expect("a final loss");
        assert!(loss.is_finite() && loss >= 0.0);
        assert!(out
            .join("runs")
            .join(&r["run"])
            .join("summary.json")
            .is_file());
    }
    // A run's identity is its configuration: the seeds' runs differ, and each directory's
    // recorded configuration says what its row says.
    let config =
        std::fs::read_to_string(out.join("runs").join(&rows[0]["run"]).join("config.toml"))
            .unwrap();
    assert!(config.contains(&format!("name = \"{}\"", rows[0]["algorithm.name"])));
    assert!(config.contains(&format!("seed = {}", rows[0]["run.seed"])));

    // The tuned value of each cell is the one with the lowest mean final loss over the seeds.
    let table = std::fs::read_to_string(out.join("table.md")).unwrap();
    for alg in ["asgd", "ormo"] {
        for setting in ["homogeneous", "heterogeneous"] {
            let mean = |lr: &str| {
                let xs: Vec<f64> = rows
                    .iter()
                    .filter(|r| {
                        r["algorithm.name"] == alg
                            && r["setting"] == setting
                            && r["algorithm.lr"] == lr
                    })
                    .map(|r| r["final_loss"].parse::<f64>().unwrap())
                    .collect();
                assert_eq!(xs.len(), 2, "two seeds per value");
                xs.iter().sum::<f64>() / 2.0
            };
            let best = ["0.001", "0.01", "0.05"]
                .into_iter()
                .min_by(|a, b| mean(a).total_cmp(&mean(b)))
                .unwrap();
            let line = format!("| {alg} | {setting} | {best} | 2 | 0 |");
            assert!(table.contains(&line), "expected `{line}` in\n{table}");
        }
    }
    assert!(
        table.contains("| algorithm | homogeneous | heterogeneous |"),
        "{table}"
    );
}

#[test]
fn an_interrupted_sweep_resumes_without_redoing_finished_runs() {
    let dir = tempfile::tempdir().unwrap();
    // Three runs of a few seconds each, one at a time.
    let grid = write_grid(
        dir.path(),
        r#"
base = "base.toml"
[axes]
"run.seed" = [1, 2, 3]
"sim.updates" = [1500000]
"#,
    );
    let out = dir.path().join("out");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lagom"))
        .args([
            "sweep",
            "--quiet",
            "--config",
            grid.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .spawn()
        .expect("lagom starts");
    let finished = || {
        std::fs::read_dir(out.join("runs"))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().join("summary.json").is_file())
                    .count()
            })
            .unwrap_or(0)
    };
    let started = Instant::now();
    while finished() < 1 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no run finished"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sweep ended before it was stopped"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: the sweep cannot tidy up; its running child dies with it.
    child.wait().unwrap();
    let done = finished();
    assert!(done < 3, "the sweep was stopped before its last run");

    let o = lagom(
        &[
            "sweep",
            "--quiet",
            "--config",
            grid.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let expected = format!(
        "3 runs: {} done now, {done} done before, 0 failed",
        3 - done
    );
    assert!(stdout(&o).contains(&expected), "{}", stdout(&o));
    assert_eq!(rows(&out).iter().filter(|r| r["status"] == "ok").count(), 3);
}

#[test]
fn a_bad_grid_is_a_configuration_error_naming_the_key_before_anything_runs() {
    for (grid, says) in [
        (
            "base = \"base.toml\"\n[axes]\n\"algorithm.nmae\" = [\"asgd\"]\n",
            "algorithm.nmae",
        ),
        (
            "base = \"base.toml\"\n[axes]\n\"run.seed\" = []\n",
            "axes.\"run.seed\" is empty",
        ),
        (
            "base = \"base.toml\"\n[axes]\n\"run.seed\" = [1, 2]\n\"algorithm.lr\" = [0.1, -1.0]\n",
            "algorithm.lr",
        ),
        ("base = \"missing.toml\"\n", "missing.toml"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = write_grid(dir.path(), grid);
        let out = dir.path().join("out");
        let o = lagom(
            &[
                "sweep",
                "--config",
                path.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(o.status.code(), Some(2), "{grid}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{grid}: {}", stderr(&o));
        assert!(!out.exists(), "{grid}: nothing may run");
    }
}
