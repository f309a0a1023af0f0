//! The run directory and the writers of its files.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{RunEvent, Summary};
use anyhow::{Context, Result};

/// A run directory: created on open; files are replaced, never appended to across runs.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

/// Appends one [`RunEvent`] per line to `metrics.jsonl`.
pub struct MetricsWriter {
    out: BufWriter<File>,
    path: PathBuf,
}

impl RunDir {
    /// Creates `path` (and parents) if needed.
    pub fn create(path: &Path) -> Result<Self> {
        fs::create_dir_all(path)
            .with_context(|| format!("cannot create run directory {}", path.display()))?;
        Ok(RunDir {
            path: path.to_path_buf(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts a fresh `metrics.jsonl`.
    pub fn metrics(&self) -> Result<MetricsWriter> {
        let path = self.path.join("metrics.jsonl");
        let file =
            File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(MetricsWriter {
            out: BufWriter::new(file),
            path,
        })
    }

    /// Continues an existing `metrics.jsonl` (a resumed run), creating it if absent.
    pub fn metrics_append(&self) -> Result<MetricsWriter> {
        let path = self.path.join("metrics.jsonl");
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(MetricsWriter {
            out: BufWriter::new(file),
            path,
        })
    }

    /// Writes `summary.json` atomically (temporary file, fsync, rename).
    pub fn write_summary(&self, summary: &Summary) -> Result<()> {
        let mut text = serde_json::to_string_pretty(summary).context("cannot encode summary")?;
        text.push('\n');
        self.write_atomically("summary.json", text.as_bytes())
    }

    /// Writes `name` atomically and durably (temporary file, fsync, rename, fsync of the
    /// directory): a reader, or a restart after a crash, sees the old file or the complete new one.
    pub fn write_atomically(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let target = self.path.join(name);
        let tmp = self.path.join(format!(".{name}.tmp"));
        let mut file =
            File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        fs::rename(&tmp, &target)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), target.display()))?;
        // The rename is durable once the directory entry is on disk.
        #[cfg(unix)]
        File::open(&self.path)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync {}", self.path.display()))?;
        Ok(())
    }
}

impl MetricsWriter {
    /// Writes one event as a JSON line, its keys in sorted order (as every line has had since
    /// the first release, so files of equal runs stay byte-identical across versions).
    pub fn write(&mut self, event: &RunEvent) -> Result<()> {
        let sorted = serde_json::to_value(event).context("cannot encode a metrics event")?;
        if let Some(kind) = sorted.get("event").and_then(|k| k.as_str()) {
            crate::monitor::event(kind);
        }
        serde_json::to_writer(&mut self.out, &sorted)
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        self.out
            .write_all(b"\n")
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// Flushes buffered lines to the file.
    pub fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}
