//! `lagom report`: valid PNG and SVG charts with one series per run, the decentralized charts
//! for decentralized runs, and a sweep's table and per-setting charts; a directory that is not a
//! run is refused by name.

mod cli_support;
use cli_support::{lagom, stderr, stdout};

use std::path::Path;

/// A `lagom sim` of `algorithm` on the `mlp` and the synthetic set into `dir`.
fn simulate(dir: &Path, algorithm: &str, extra: &[&str]) {
    let name = format!("algorithm.name=\"{algorithm}\"");
    let mut args = vec![
        "sim",
        "--quiet",
        "--run-dir",
        dir.to_str().unwrap(),
        "--workers",
        "4",
        "--set",
        "sim.objective=\"model\"",
        "--set",
        "data.name=\"synthetic\"",
        "--set",
        "model.name=\"mlp\"",
        "--set",
        &name,
        "--set",
        "sim.updates=60",
        "--set",
        "sim.eval_every=10",
        "--set",
        "heterogeneity.slow_fraction=0.25",
    ];
    args.extend_from_slice(extra);
    let o = lagom(&args, &[("RAYON_NUM_THREADS", "1")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Checks `stem.png` decodes to a 960 × 600 image with more than one colour, and `stem.svg` is an
/// SVG document holding each of `series` in the legend and a line per series.
fn check_chart(stem: &Path, series: &[&str]) {
    let png = std::fs::File::open(stem.with_extension("png")).expect("the PNG exists");
    let mut reader = png::Decoder::new(png).read_info().expect("a valid PNG");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).expect("PNG pixels decode");
    assert_eq!((info.width, info.height), (960, 600));
    assert!(
        pixels.chunks(3).any(|p| p != [255, 255, 255]),
        "the PNG is not blank"
    );
    let svg = std::fs::read_to_string(stem.with_extension("svg")).expect("the SVG exists");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    for name in series {
        assert!(svg.contains(name), "{}: no series `{name}`", stem.display());
    }
    // Each series: its line, plus its legend sample.
    assert!(
        svg.matches("<polyline").count() >= 2 * series.len(),
        "{}: fewer lines than series",
        stem.display()
    );
}

#[test]
fn runs_are_overlaid_in_valid_png_and_svg_charts_with_a_series_each() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("run-a"), dir.path().join("run-b"));
    simulate(&a, "asgd", &["--set", "algorithm.lr=0.05"]);
    simulate(&b, "ormo", &["--set", "algorithm.lr=0.01"]);
    let out = dir.path().join("charts");
    let o = lagom(
        &[
            "report",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let series = ["asgd (run-a)", "ormo (run-b)"];
    for chart in [
        "test-accuracy-vs-updates",
        "test-accuracy-vs-time",
        "loss-vs-updates",
        "train-loss-vs-updates",
        "staleness-mean-vs-updates",
        "staleness-p99-vs-updates",
        "effective-speed-per-worker",
        "staleness-per-worker",
    ] {
        check_chart(&out.join(chart), &series);
        assert!(
            stdout(&o).contains(&format!("{chart}.png")),
            "{}",
            stdout(&o)
        );
    }
    let svg = std::fs::read_to_string(out.join("loss-vs-updates.svg")).unwrap();
    assert!(
        svg.contains("log scale") && svg.contains("updates"),
        "titled axes"
    );
    let time = std::fs::read_to_string(out.join("test-accuracy-vs-time.svg")).unwrap();
    assert!(time.contains("virtual time (s)"));
    // Parameter-server runs have no consensus distance.
    assert!(!out.join("consensus-distance-vs-iterations.svg").exists());
}

#[test]
fn decentralized_runs_get_consensus_and_bytes_charts() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("pc");
    simulate(
        &run,
        "pc-asgd",
        &[
            "--set",
            "algorithm.momentum=0",
            "--set",
            "algorithm.lr=0.05",
        ],
    );
    let out = dir.path().join("charts");
    let o = lagom(
        &[
            "report",
            run.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    check_chart(
        &out.join("consensus-distance-vs-iterations"),
        &["pc-asgd (pc)"],
    );
    check_chart(&out.join("bytes-per-iteration"), &["pc-asgd (pc)"]);
    assert!(!out.join("effective-speed-per-worker.svg").exists());
}

#[test]
fn a_sweep_gets_its_table_and_a_chart_per_setting() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("base.toml"),
        "[cluster]\nworkers = 4\n[sim]\nupdates = 400\neval_every = 50\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("grid.toml"),
        r#"
base = "base.toml"
[axes]
"algorithm.name" = ["asgd", "ormo"]
"run.seed" = [1, 2]
[variants.setting]
calm = { "heterogeneity.slow_fraction" = 0.0 }
mixed = { "heterogeneity.slow_fraction" = 0.5 }
"#,
    )
    .unwrap();
    let sweep = dir.path().join("sw");
    let grid = dir.path().join("grid.toml");
    let o = lagom(
        &[
            "sweep",
            "--quiet",
            "--config",
            grid.to_str().unwrap(),
            "--out",
            sweep.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = dir.path().join("charts");
    let o = lagom(
        &[
            "report",
            sweep.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out.join("sw-table.md").is_file());
    for setting in ["calm", "mixed"] {
        check_chart(&out.join(format!("sw-{setting}")), &["asgd", "ormo"]);
    }
}

#[test]
fn a_directory_that_is_not_a_run_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let o = lagom(
        &[
            "report",
            dir.path().to_str().unwrap(),
            "--out",
            dir.path().join("c").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("is not a finished run"),
        "{}",
        stderr(&o)
    );
}
