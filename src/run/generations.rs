//! Checkpoint files that survive a damaged disk block or a torn write: each is a checksummed
//! envelope (magic, payload length, CRC-32, payload), written atomically, and the previous
//! generation is kept as `NAME.prev`. Reading takes the newest generation that decodes and passes
//! the caller's checks, and says so when it had to fall back.

use std::path::Path;

use anyhow::{anyhow, bail, Result};

use super::RunDir;

/// The first bytes of every checkpoint envelope.
const MAGIC: &[u8; 8] = b"LAGOMCK\x01";
/// Magic, payload length (u64 LE), CRC-32 of the payload (u32 LE).
const HEADER: usize = 8 + 8 + 4;

/// The name of the previous generation of `name`.
pub fn previous_name(name: &str) -> String {
    format!("{name}.prev")
}

/// `payload` in its envelope.
pub fn seal(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The payload of an envelope, checked; a file without the magic is taken as a bare payload
/// (checkpoints written before envelopes existed).
pub fn open(bytes: &[u8]) -> Result<&[u8]> {
    if !bytes.starts_with(MAGIC) {
        return Ok(bytes);
    }
    if bytes.len() < HEADER {
        bail!("truncated header ({} bytes)", bytes.len());
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[8..16]);
    let len = u64::from_le_bytes(len);
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&bytes[16..20]);
    let crc = u32::from_le_bytes(crc);
    let payload = &bytes[HEADER..];
    if payload.len() as u64 != len {
        bail!("truncated: {} payload bytes of {len}", payload.len());
    }
    let actual = crc32fast::hash(payload);
    if actual != crc {
        bail!("checksum mismatch (stored {crc:08x}, computed {actual:08x}): the file is damaged");
    }
    Ok(payload)
}

/// Writes `payload` as `name` in `dir` (atomically, durably), after keeping the current `name`, if
/// any, as its previous generation.
pub fn save(dir: &RunDir, name: &str, payload: &[u8]) -> Result<()> {
    let current = dir.path().join(name);
    if current.is_file() {
        let previous = dir.path().join(previous_name(name));
        std::fs::rename(&current, &previous).map_err(|e| {
            anyhow!(
                "cannot keep {} as {}: {e}",
                current.display(),
                previous.display()
            )
        })?;
    }
    dir.write_atomically(name, &seal(payload))
}

/// A checkpoint read back, and from which generation.
#[derive(Debug)]
pub struct Loaded<T> {
    /// What `decode` made of it.
    pub value: T,
    /// The file it came from.
    pub path: std::path::PathBuf,
    /// Why the newest generation was not used, when it was not.
    pub fell_back: Option<String>,
}

/// Reads `name` in `dir` through `decode` (which also checks that it belongs to this run); if the
/// newest generation is missing, damaged or refused, the previous one. The error names both files
/// and why each was refused.
pub fn load<T>(dir: &Path, name: &str, decode: impl Fn(&[u8]) -> Result<T>) -> Result<Loaded<T>> {
    let read = |path: &Path| -> Result<T> {
        let bytes = std::fs::read(path).map_err(|e| anyhow!("cannot read it: {e}"))?;
        decode(open(&bytes)?)
    };
    let newest = dir.join(name);
    let newest_error = match read(&newest) {
        Ok(value) => {
            return Ok(Loaded {
                value,
                path: newest,
                fell_back: None,
            })
        }
        Err(e) => format!("{}: {e:#}", newest.display()),
    };
    let previous = dir.join(previous_name(name));
    match read(&previous) {
        Ok(value) => Ok(Loaded {
            value,
            path: previous,
            fell_back: Some(newest_error),
        }),
        Err(e) => bail!(
            "no usable checkpoint (run without --resume to start afresh): {newest_error}; {}: {e:#}",
            previous.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_payload_opens_and_any_flipped_bit_or_cut_is_refused() {
        let payload: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let sealed = seal(&payload);
        assert_eq!(open(&sealed).expect("opens"), &payload[..]);
        for i in [8, 12, 17, HEADER, HEADER + 500, sealed.len() - 1] {
            let mut damaged = sealed.clone();
            damaged[i] ^= 0x04;
            assert!(
                open(&damaged).is_err(),
                "a flipped bit at {i} went unnoticed"
            );
        }
        assert!(open(&sealed[..sealed.len() - 1]).is_err());
        assert!(open(&sealed[..10]).is_err());
        // A file from before envelopes is its own payload.
        assert_eq!(open(b"\x81\xa1a\x01").expect("bare"), b"\x81\xa1a\x01");
    }

    #[test]
    fn the_previous_generation_is_kept_and_used_when_the_newest_is_damaged() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = RunDir::create(tmp.path()).expect("dir");
        let decode = |b: &[u8]| -> Result<Vec<u8>> {
            if b.first() == Some(&0xff) {
                bail!("refused by the caller");
            }
            Ok(b.to_vec())
        };
        assert!(load(tmp.path(), "cp", decode).is_err(), "nothing yet");
        save(&dir, "cp", b"one").expect("save");
        save(&dir, "cp", b"two").expect("save");
        let got = load(tmp.path(), "cp", decode).expect("loads");
        assert_eq!(
            (got.value.as_slice(), got.fell_back.is_none()),
            (&b"two"[..], true)
        );
        // Damage the newest: the previous generation is used, and the reason is kept.
        let path = tmp.path().join("cp");
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).expect("write");
        let got = load(tmp.path(), "cp", decode).expect("falls back");
        assert_eq!(got.value, b"one");
        assert!(got.fell_back.expect("says why").contains("checksum"));
        // A newest the caller refuses falls back too; both refused is an error naming both.
        save(&dir, "cp", &[0xff]).expect("save");
        std::fs::write(tmp.path().join("cp.prev"), [0xff, 1]).expect("write");
        let err = format!("{:#}", load(tmp.path(), "cp", decode).unwrap_err());
        assert!(
            err.contains("refused by the caller") && err.contains("cp.prev"),
            "{err}"
        );
    }
}
