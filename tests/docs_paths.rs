//! The documentation a user reads: the README is a front page (at most 250 lines) whose links
//! resolve, and every relative link and every repository path the documents name in backticks
//! exists — nothing points outside the repository. (docs/algorithms.md cites files of other
//! projects' repositories in backticks; only its links are checked.)

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md, deploy/README.md and every docs/*.md.
fn documents() -> Vec<PathBuf> {
    let mut docs = vec![root().join("README.md"), root().join("deploy/README.md")];
    let mut more: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    more.sort();
    docs.extend(more);
    docs
}

/// Targets of `](target)` links that are neither web addresses nor in-page anchors, without
/// their `#anchor`.
fn relative_links(text: &str) -> Vec<String> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .filter(|t| !t.starts_with("http") && !t.starts_with('#') && !t.starts_with("mailto:"))
        .map(|t| t.split('#').next().unwrap_or(t).to_string())
        .collect()
}

/// Backticked words that name a file or folder of the repository: they start with one of its
/// top-level folders and hold no placeholder or glob.
fn backticked_paths(text: &str) -> Vec<String> {
    const TOP: [&str; 8] = [
        "src/", "tests/", "benches/", "scripts/", "config/", "deploy/", "docs/", "fuzz/",
    ];
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| TOP.iter().any(|t| w.starts_with(t)))
        .filter(|w| !w.contains(char::is_whitespace))
        .filter(|w| !w.contains(['*', '{', '<', '$', '…']))
        .filter(|w| !w.split(['/', '.']).any(is_placeholder))
        .map(|w| w.trim_end_matches([',', '.', ':']).to_string())
        .collect()
}

/// An all-capitals path segment such as `TARGET` or `NAME` stands for any name.
fn is_placeholder(segment: &str) -> bool {
    segment.len() > 1 && segment.chars().all(|c| c.is_ascii_uppercase() || c == '_')
}

#[test]
fn the_readme_is_a_front_page() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let lines = readme.lines().count();
    assert!(
        lines <= 250,
        "README.md has {lines} lines; reference material goes to docs/"
    );
    assert!(
        readme.contains("\ncargo test --release\n"),
        "the test command is shown"
    );
    for doc in [
        "docs/configuration.md",
        "docs/algorithms.md",
        "docs/cluster.md",
    ] {
        assert!(readme.contains(&format!("]({doc}")), "README links {doc}");
    }
}

#[test]
fn every_path_the_documents_name_exists_and_none_leaves_the_repository() {
    let repository = root().canonicalize().expect("the repository root");
    let mut missing = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).expect("document reads");
        let name = doc
            .strip_prefix(root())
            .unwrap_or(&doc)
            .display()
            .to_string();
        let dir = doc.parent().unwrap_or(Path::new("."));
        for link in relative_links(&text) {
            match dir.join(&link).canonicalize() {
                Ok(target) if target.starts_with(&repository) => {}
                Ok(_) => missing.push(format!("{name}: link {link} leaves the repository")),
                Err(_) => missing.push(format!("{name}: link {link}")),
            }
        }
        // A path in backticks that climbs out of the repository names something a clone lacks.
        for word in text.split('`').skip(1).step_by(2) {
            if word.starts_with("../") {
                missing.push(format!("{name}: `{word}` leaves the repository"));
            }
        }
        let cites_other_repositories = name == "docs/algorithms.md";
        for path in backticked_paths(&text)
            .into_iter()
            .filter(|_| !cites_other_repositories)
        {
            if !root().join(&path).exists() {
                missing.push(format!("{name}: `{path}`"));
            }
        }
    }
    assert!(missing.is_empty(), "missing:\n{}", missing.join("\n"));
}
