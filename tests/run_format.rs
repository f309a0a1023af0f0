//! The format of `metrics.jsonl` and `summary.json`: every event shape and every run kind's
//! summary reads back as itself, real runs write nothing else, and the tables of docs/outputs.md
//! are the ones the types give (`BLESS_README=1 cargo test --test run_format` rewrites them).

use std::collections::BTreeMap;
use std::path::Path;

use lagom::config::{load, CliOverrides, Config};
use lagom::run::catalog::{details_examples, event_examples, format_tables, EVENT_SHAPES};
use lagom::run::{RunDetails, RunDir, RunEvent, Summary};
use lagom::server::StalenessHistogram;
use lagom::sim;

const START: &str = "<!-- run-format:start (generated from src/run/catalog.rs) -->\n";
const END: &str = "<!-- run-format:end -->";

#[test]
fn every_event_shape_has_an_example_and_reads_back_as_itself() {
    let examples = event_examples();
    let shapes: Vec<&str> = examples.iter().map(|(_, e)| e.shape()).collect();
    assert_eq!(
        shapes, EVENT_SHAPES,
        "one example per shape, in the table's order"
    );
    for (_, event) in &examples {
        let line = serde_json::to_string(event).expect("encodes");
        let back: RunEvent = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(
            &back,
            event,
            "{} came back as {}",
            event.shape(),
            back.shape()
        );
    }
}

#[test]
fn the_metrics_writer_sorts_keys_and_its_lines_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = RunDir::create(dir.path()).expect("run dir");
    let mut metrics = run.metrics().expect("metrics");
    let events: Vec<RunEvent> = event_examples().into_iter().map(|(_, e)| e).collect();
    for e in &events {
        metrics.write(e).expect("writes");
    }
    metrics.flush().expect("flushes");
    let text = std::fs::read_to_string(dir.path().join("metrics.jsonl")).expect("file");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), events.len());
    for (line, event) in lines.iter().zip(&events) {
        let value: serde_json::Value = serde_json::from_str(line).expect("JSON");
        let keys: Vec<&String> = value.as_object().expect("an object").keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "{line}");
        assert!(line.contains(&format!(
            "\"event\":\"{}\"",
            value["event"].as_str().unwrap()
        )));
        assert_eq!(
            &serde_json::from_str::<RunEvent>(line).expect("reads"),
            event
        );
    }
}

#[test]
fn a_line_of_an_unknown_shape_is_refused_with_the_event_named() {
    let cases = [
        r#"{"event":"eval","t_s":1.0,"updates":3,"surprise":1}"#,
        r#"{"event":"teleport","t_s":1.0}"#,
        r#"{"t_s":1.0,"updates":3}"#,
        r#"{"event":"end","t_s":"soon","updates":3,"loss":null}"#,
    ];
    for line in cases {
        assert!(
            serde_json::from_str::<RunEvent>(line).is_err(),
            "{line} must not read as an event"
        );
    }
}

fn summary_with(details: RunDetails) -> Summary {
    Summary {
        kind: "sim".into(),
        algorithm: "ormo".into(),
        scheduler: "async".into(),
        workers: 2,
        updates: 10,
        wall_s: 1.0,
        final_loss: Some(0.5),
        diverged: false,
        staleness: StalenessHistogram::default().summary(),
        per_worker: Vec::new(),
        gradients_rejected: BTreeMap::from([("stale".to_string(), 2)]),
        seed: 7,
        stopped_by: None,
        details,
    }
}

#[test]
fn every_kind_of_summary_reads_back_as_itself() {
    for (kind, details) in details_examples() {
        let summary = summary_with(details);
        let text = serde_json::to_string_pretty(&summary).expect("encodes");
        let back: Summary = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(back, summary, "{kind}");
    }
    // PC-ASGD's θ is absent, not null, for other algorithms, and such a summary still reads back.
    let (_, mut decen) = details_examples().swap_remove(1);
    if let RunDetails::DecentralizedSim(d) = &mut decen {
        d.theta_mean = None;
    }
    let summary = summary_with(decen);
    let text = serde_json::to_string(&summary).expect("encodes");
    assert!(!text.contains("theta_mean"), "{text}");
    assert_eq!(
        serde_json::from_str::<Summary>(&text).expect("reads"),
        summary
    );
}

fn config(file: &str) -> Config {
    let cli = CliOverrides {
        config: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)),
        ..CliOverrides::default()
    };
    load(&cli).expect("the shipped configuration loads").0
}

#[test]
fn real_simulations_write_only_known_shapes_and_their_summary_reads_back() {
    for (file, eval_shape) in [
        ("config/sim-quadratic.toml", "eval/sim"),
        ("config/decen/sgp.toml", "eval/decentralized-sim"),
        ("config/decen/pc-asgd.toml", "eval/decentralized-sim"),
    ] {
        let mut c = config(file);
        c.sim.updates = c.sim.updates.min(300);
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunDir::create(dir.path()).expect("run dir");
        let mut metrics = run.metrics().expect("metrics");
        let result = sim::run(&c.sim_setup(), &mut metrics, false).expect("runs");
        drop(metrics);
        run.write_summary(&result.summary).expect("summary");
        let text = std::fs::read_to_string(dir.path().join("metrics.jsonl")).expect("metrics");
        let shapes: Vec<&str> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<RunEvent>(l)
                    .unwrap_or_else(|e| panic!("{file}: {l}: {e}"))
                    .shape()
            })
            .collect();
        assert_eq!(shapes.first(), Some(&"start/sim"), "{file}");
        assert_eq!(shapes.last(), Some(&"end/sim"), "{file}");
        assert!(shapes.contains(&eval_shape), "{file}: {shapes:?}");
        let written = std::fs::read_to_string(dir.path().join("summary.json")).expect("summary");
        let back: Summary = serde_json::from_str(&written).expect("the summary reads back");
        assert_eq!(back, result.summary, "{file}");
    }
}

#[test]
fn the_documentation_describes_the_format_the_types_define() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/outputs.md");
    let readme = std::fs::read_to_string(&path).expect("docs/outputs.md");
    let (Some(a), Some(b)) = (readme.find(START), readme.find(END)) else {
        panic!("docs/outputs.md lacks the markers {START:?} … {END:?}");
    };
    let tables = format_tables();
    let current = &readme[a + START.len()..b];
    if current == tables {
        return;
    }
    if std::env::var_os("BLESS_README").is_some() {
        let updated = format!("{}{START}{tables}{}", &readme[..a], &readme[b..]);
        std::fs::write(&path, updated).expect("docs/outputs.md written");
        return;
    }
    panic!(
        "docs/outputs.md's format tables differ from the types; rerun with BLESS_README=1 to \
         rewrite them. Expected:\n{tables}"
    );
}
