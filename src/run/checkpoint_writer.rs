//! Durable checkpoint writes on a thread of their own, so an actor never waits for a disk's
//! fsync between two messages. The actor encodes its state (a consistent snapshot) and hands
//! the bytes over; the writer saves them with [`generations::save`] (checksummed, previous
//! generation kept). At most one write runs and one waits: a newer checkpoint replaces one that
//! has not started yet (only the newest matters), so a slow disk costs memory for two encoded
//! checkpoints at most. [`CheckpointWriter::finish`] waits for what is queued, so the final
//! checkpoint is on disk before the run ends.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use anyhow::Result;

use super::generations;
use super::RunDir;

/// What the writer reports after each write: the tag it was submitted with, and the outcome.
pub type WriteDone = Box<dyn Fn(u64, Result<()>) + Send>;

struct Job {
    tag: u64,
    payload: Vec<u8>,
}

#[derive(Default)]
struct Queue {
    next: Option<Job>,
    closed: bool,
    /// The tag of the newest checkpoint written successfully.
    last_ok: Option<u64>,
}

/// The writer of one checkpoint file (see the module docs).
pub struct CheckpointWriter {
    queue: Arc<(Mutex<Queue>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl CheckpointWriter {
    /// Starts the thread that writes `name` into `dir`; `done` hears of every write.
    pub fn start(dir: RunDir, name: &'static str, done: WriteDone) -> Result<Self> {
        let queue = Arc::new((Mutex::new(Queue::default()), Condvar::new()));
        let shared = queue.clone();
        let thread = std::thread::Builder::new()
            .name(format!("write {name}"))
            .spawn(move || write_jobs(&dir, name, &shared, &done))?;
        Ok(CheckpointWriter {
            queue,
            thread: Some(thread),
        })
    }

    /// Queues `payload` (tagged `tag`); returns false when it replaced a checkpoint that had not
    /// started to be written (that one is never written).
    pub fn submit(&self, tag: u64, payload: Vec<u8>) -> bool {
        let (lock, wake) = &*self.queue;
        let Ok(mut q) = lock.lock() else {
            return false;
        };
        let replaced = q.next.replace(Job { tag, payload }).is_some();
        wake.notify_one();
        !replaced
    }

    /// Waits until everything submitted is written, then stops the thread; returns the tag of
    /// the newest checkpoint it wrote successfully (what is on disk now), if any.
    pub fn finish(mut self) -> Option<u64> {
        self.close();
        self.queue.0.lock().ok().and_then(|q| q.last_ok)
    }

    fn close(&mut self) {
        if let Ok(mut q) = self.queue.0.lock() {
            q.closed = true;
            self.queue.1.notify_one();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for CheckpointWriter {
    fn drop(&mut self) {
        self.close();
    }
}

fn write_jobs(dir: &RunDir, name: &str, queue: &(Mutex<Queue>, Condvar), done: &WriteDone) {
    loop {
        let job = {
            let Ok(mut q) = queue.0.lock() else {
                return;
            };
            loop {
                if let Some(job) = q.next.take() {
                    break job;
                }
                if q.closed {
                    return;
                }
                q = match queue.1.wait(q) {
                    Ok(q) => q,
                    Err(_) => return,
                };
            }
        };
        let result = generations::save(dir, name, &job.payload);
        if result.is_ok() {
            if let Ok(mut q) = queue.0.lock() {
                q.last_ok = Some(job.tag);
            }
        }
        done(job.tag, result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn every_submitted_checkpoint_is_written_or_replaced_by_a_newer_one_and_finish_waits() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir::create(tmp.path()).unwrap();
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let writer = CheckpointWriter::start(
            dir.clone(),
            "cp.bin",
            Box::new(move |tag, result| {
                let _ = tx.lock().unwrap().send((tag, result.is_ok()));
            }),
        )
        .unwrap();
        let mut replaced = 0;
        for tag in 0..50u64 {
            if !writer.submit(tag, vec![tag as u8; 100_000]) {
                replaced += 1;
            }
        }
        writer.finish();
        let written: Vec<(u64, bool)> = rx.try_iter().collect();
        assert!(written.iter().all(|(_, ok)| *ok), "{written:?}");
        let tags: Vec<u64> = written.iter().map(|(t, _)| *t).collect();
        assert!(tags.windows(2).all(|w| w[0] < w[1]), "in order: {tags:?}");
        assert_eq!(tags.last(), Some(&49), "the newest is always written");
        assert_eq!(tags.len() + replaced, 50, "each one written or replaced");
        // The newest generation on disk is the last one submitted.
        let loaded = generations::load(dir.path(), "cp.bin", |b| Ok(b.to_vec())).unwrap();
        assert_eq!(loaded.value, vec![49u8; 100_000]);
    }
}
