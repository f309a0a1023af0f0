//! `[monitor] listen`: a `--role local` run serves Prometheus metrics while it trains, and what
//! the endpoint says agrees with what the run records (summary.json, metrics.jsonl).

mod cli_support;
use cli_support::{events, free_port, local_mlp_args, summary};

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `GET /metrics` from `addr`: the body, or `None` while nothing answers.
fn scrape(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: lagom\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// Every sample of the exposition: `name{labels}` → value.
fn samples(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The sum of every sample of `metric` (all label sets).
fn total(s: &BTreeMap<String, f64>, metric: &str) -> f64 {
    s.iter()
        .filter(|(k, _)| *k == metric || k.starts_with(&format!("{metric}{{")))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn a_local_run_serves_metrics_that_agree_with_its_records() {
    let run = tempfile::tempdir().expect("run dir");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_lagom"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(local_mlp_args(
            run.path(),
            &[
                "--set",
                "server.updates=1500",
                "--set",
                "server.eval_every=200",
            ],
        ))
        .arg("--set")
        .arg(format!("monitor.listen={addr:?}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("lagom starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut scrapes = Vec::new();
    while child.try_wait().expect("wait").is_none() && Instant::now() < deadline {
        if let Some(body) = scrape(&addr) {
            scrapes.push(samples(&body));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    assert!(child.wait().expect("exit").success(), "the run succeeded");
    let last = scrapes
        .iter()
        .rev()
        .find(|s| s.contains_key("lagom_test_accuracy"))
        .expect("a scrape after the first evaluation");
    assert!(
        scrapes.len() >= 3,
        "the endpoint answered during the run: {}",
        scrapes.len()
    );

    let summary = summary(run.path());
    let updates = last["lagom_updates"];
    assert!(
        updates >= 200.0 && updates <= summary["updates"].as_f64().unwrap(),
        "{updates}"
    );
    let applied = total(last, "lagom_gradients_applied_total");
    assert!(applied <= total(last, "lagom_gradients_received_total"));
    assert!(
        (applied - updates).abs() <= 1.0,
        "{applied} applied, {updates} updates"
    );
    for w in summary["per_worker"].as_array().expect("per_worker") {
        let id = w["id"].as_u64().expect("id");
        let seen = last[&format!("lagom_gradients_applied_total{{worker=\"{id}\"}}")];
        assert!(
            seen <= w["gradients"].as_f64().unwrap(),
            "worker {id}: {seen}"
        );
    }
    assert!((last["lagom_staleness_count"] - updates).abs() <= 1.0);
    assert!(last["lagom_bytes_received_total"] > 0.0 && last["lagom_bytes_sent_total"] > 0.0);
    assert_eq!(last["lagom_events_total{event=\"join\"}"], 2.0);
    // The accuracy gauge is an evaluation the run recorded, to the last bit.
    let evaluated: Vec<(f64, f64)> = events(&run.path().join("metrics.jsonl"))
        .iter()
        .filter(|e| e["event"] == "eval")
        .map(|e| {
            (
                e["updates"].as_f64().unwrap(),
                e["test_accuracy"].as_f64().unwrap(),
            )
        })
        .collect();
    let gauge = (last["lagom_evaluated_update"], last["lagom_test_accuracy"]);
    assert!(evaluated.contains(&gauge), "{gauge:?} not in {evaluated:?}");
}

#[test]
fn the_grafana_dashboard_charts_only_metrics_lagom_serves() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana-lagom.json");
    let text = std::fs::read_to_string(path).expect("the dashboard exists");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let served = [
        lagom::monitor::GRADIENTS_RECEIVED,
        lagom::monitor::GRADIENTS_APPLIED,
        lagom::monitor::GRADIENTS_REJECTED,
        lagom::monitor::UPDATES,
        lagom::monitor::UPDATES_PER_SECOND,
        lagom::monitor::STALENESS,
        lagom::monitor::EFFECTIVE_SPEED,
        lagom::monitor::TEST_ACCURACY,
        lagom::monitor::TEST_LOSS,
        lagom::monitor::EVALUATED_UPDATE,
        lagom::monitor::BYTES_SENT,
        lagom::monitor::BYTES_RECEIVED,
        lagom::monitor::EVENTS,
    ];
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8);
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let names: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("lagom_"))
                .collect();
            assert!(!names.is_empty(), "{expr}");
            for name in names {
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(name);
                assert!(
                    served.contains(&base),
                    "{expr} charts {name}, which lagom does not serve"
                );
            }
        }
    }
}
