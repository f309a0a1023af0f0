//! The shipped experiments (experiments/*.toml) end to end, reduced: each grid with its first
//! two values on every axis and tuned key, and in each variant group the variants the test
//! expects as rows (else the first two), over its own base file, with a short
//! budget (`lagom sweep --set`); then `lagom report` on the sweep. The full grids are the
//! README's commands (docs/results.md holds their results).

mod cli_support;
use cli_support::{fashion_mnist_present, lagom, stderr};

use std::path::{Path, PathBuf};

fn experiments() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments")
}

/// `name`'s grid with at most two values per axis and tuned key, the variants named in `rows`
/// (else two per group), and its base given as an absolute path, written into `dir`.
fn reduced_grid(name: &str, dir: &Path, rows: &[&str]) -> PathBuf {
    let text = std::fs::read_to_string(experiments().join(format!("{name}.toml"))).unwrap();
    let mut grid: toml::Table = toml::from_str(&text).expect("the grid is TOML");
    let base = grid["base"].as_str().expect("a base").to_string();
    grid.insert(
        "base".into(),
        toml::Value::String(experiments().join(base).display().to_string()),
    );
    if let Some(toml::Value::Table(axes)) = grid.get_mut("axes") {
        for (_, values) in axes.iter_mut() {
            if let toml::Value::Array(v) = values {
                v.truncate(2);
            }
        }
    }
    if let Some(toml::Value::Table(groups)) = grid.get_mut("variants") {
        for (_, variants) in groups.iter_mut() {
            if let toml::Value::Table(v) = variants {
                // The variants the test expects as rows, else the first two.
                let mut keep: Vec<String> = v
                    .keys()
                    .filter(|k| rows.contains(&k.as_str()))
                    .cloned()
                    .collect();
                if keep.is_empty() {
                    keep = v.keys().take(2).cloned().collect();
                }
                v.retain(|k, _| keep.iter().any(|x| x == k));
            }
        }
    }
    if let Some(toml::Value::Table(tune)) = grid.get_mut("tune") {
        if let Some(toml::Value::Array(v)) = tune.get_mut("values") {
            v.truncate(2);
        }
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, toml::to_string(&grid).unwrap()).unwrap();
    path
}

/// Runs the reduced `name` with `budget` settings; checks every run finished and the table has a
/// row per `rows`; draws its report.
fn run_reduced(name: &str, budget: &[&str], runs: usize, rows: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let grid = reduced_grid(name, dir.path(), rows);
    let out = dir.path().join("sweep");
    let mut args = vec![
        "sweep",
        "--quiet",
        "--jobs",
        "2",
        "--config",
        grid.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    for b in budget {
        args.extend(["--set", b]);
    }
    let o = lagom(&args, &[]);
    assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), runs + 1, "{name}:\n{csv}");
    assert_eq!(
        csv.matches(",ok,").count(),
        runs,
        "{name}: every run ends ok\n{csv}"
    );
    let table = std::fs::read_to_string(out.join("table.md")).unwrap();
    for row in rows {
        assert!(
            table.contains(&format!("| {row} |")),
            "{name}: no row {row}\n{table}"
        );
    }
    let charts = dir.path().join("charts");
    let o = lagom(
        &[
            "report",
            out.to_str().unwrap(),
            "--out",
            charts.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
    let pngs = std::fs::read_dir(&charts)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
        .count();
    assert!(pngs >= 1, "{name}: no chart");
}

#[test]
fn the_ormo_table_experiment_runs_end_to_end_reduced() {
    if !fashion_mnist_present("the_ormo_table_experiment_runs_end_to_end_reduced") {
        return;
    }
    // 2 algorithms × 2 worker counts × 2 seeds × 2 settings × 2 learning rates.
    run_reduced(
        "ormo-table",
        &["sim.updates=40", "sim.eval_every=20"],
        32,
        &["asgd", "naive-asgdm"],
    );
}

#[test]
fn the_slowmo_experiment_runs_end_to_end_reduced() {
    if !fashion_mnist_present("the_slowmo_experiment_runs_end_to_end_reduced") {
        return;
    }
    // 2 seeds × 2 methods × 2 learning rates.
    run_reduced(
        "slowmo",
        &["sim.updates=16", "sim.eval_every=8"],
        8,
        &["local-sgd", "slowmo-over-local-sgd"],
    );
}

#[test]
fn the_pc_asgd_experiment_runs_end_to_end_reduced() {
    if !fashion_mnist_present("the_pc_asgd_experiment_runs_end_to_end_reduced") {
        return;
    }
    // 2 seeds × 4 methods × 2 learning rates, in a fifteenth of the virtual time.
    run_reduced(
        "pc-asgd",
        &["sim.time_budget_s=0.2", "sim.eval_every=5"],
        16,
        &["dpsgd", "pc-asgd", "pc-asgd-adaptive", "pc-asgd-per-node"],
    );
}

#[test]
fn the_paper_scale_grid_is_valid() {
    // Too big to run here: every one of its configurations is checked.
    let o = lagom(
        &[
            "sweep",
            "--dry-run",
            "--config",
            experiments()
                .join("ormo-table-paper.toml")
                .to_str()
                .unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(cli_support::stdout(&o).contains("288 runs, configurations checked"));
}
