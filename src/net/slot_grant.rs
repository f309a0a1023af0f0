//! Which worker slots a worker certificate allows. A worker certificate names each slot it may
//! take as the DNS name `s{N}.slot.lagom-worker` (or `*.slot.lagom-worker` for any slot), so the
//! server, the rendezvous and every peer check a claimed slot with the same name verification
//! TLS uses, without parsing certificates themselves. `lagom certs --workers HOST:SLOTS` writes
//! them: `cpu1:1-2`, `gpu1:0`, `edge:4+6+8-9`, `spare:*`.

use anyhow::{bail, Context, Result};

use super::certs::WORKER_NAME;

/// The worker slots one certificate allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotGrant {
    /// Any slot of any run (for a pool of interchangeable hosts).
    Any,
    /// Exactly these slots (sorted, no duplicates, not empty).
    Slots(Vec<usize>),
}

/// Most slots one certificate may list (each is a name in the certificate).
pub const MAX_GRANTED_SLOTS: usize = 4_096;

impl SlotGrant {
    /// The DNS names that carry the grant in a certificate.
    pub fn dns_names(&self) -> Vec<String> {
        match self {
            SlotGrant::Any => vec![format!("*.slot.{WORKER_NAME}")],
            SlotGrant::Slots(slots) => slots.iter().map(|&s| slot_name(s)).collect(),
        }
    }

    /// Parses `*` or `+`-separated slots and inclusive ranges (`0`, `1-3`, `0+4-5`).
    pub fn parse(spec: &str) -> Result<Self> {
        if spec == "*" {
            return Ok(SlotGrant::Any);
        }
        let mut slots = Vec::new();
        for part in spec.split('+') {
            let (first, last) = match part.split_once('-') {
                Some((a, b)) => (a, b),
                None => (part, part),
            };
            let parse = |s: &str| {
                s.trim()
                    .parse::<usize>()
                    .with_context(|| format!("`{part}` is not a slot or a range of slots"))
            };
            let (first, last) = (parse(first)?, parse(last)?);
            if first > last {
                bail!("slot range `{part}` is empty");
            }
            if last - first >= MAX_GRANTED_SLOTS
                || slots.len() + (last - first) >= MAX_GRANTED_SLOTS
            {
                bail!("`{spec}` names more than {MAX_GRANTED_SLOTS} slots; use `*` for any slot");
            }
            slots.extend(first..=last);
        }
        slots.sort_unstable();
        slots.dedup();
        Ok(SlotGrant::Slots(slots))
    }
}

/// The certificate name that allows slot `slot`.
pub fn slot_name(slot: usize) -> String {
    format!("s{slot}.slot.{WORKER_NAME}")
}

/// Parses a worker host of `lagom certs --workers`: `NAME:SLOTS` (see [`SlotGrant::parse`]).
pub fn parse_worker_host(text: &str) -> Result<(String, SlotGrant)> {
    let Some((name, spec)) = text.split_once(':') else {
        bail!(
            "worker host `{text}` names no slots: write `{text}:SLOTS` with the slots it runs \
             (`{text}:0`, `{text}:1-3`, `{text}:0+4`), or `{text}:*` to let it take any slot"
        );
    };
    let grant =
        SlotGrant::parse(spec).with_context(|| format!("in the slots of worker host `{name}`"))?;
    Ok((name.to_string(), grant))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_and_ranges_parse_sorted_and_deduplicated() {
        assert_eq!(SlotGrant::parse("*").unwrap(), SlotGrant::Any);
        assert_eq!(
            SlotGrant::parse("4+1-2+2").unwrap(),
            SlotGrant::Slots(vec![1, 2, 4])
        );
        assert_eq!(
            SlotGrant::Slots(vec![3]).dns_names(),
            vec!["s3.slot.lagom-worker"]
        );
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, says) in [
            ("3-1", "empty"),
            ("a", "not a slot"),
            ("", "not a slot"),
            ("0-99999", "more than"),
        ] {
            let err = format!("{:#}", SlotGrant::parse(spec).unwrap_err());
            assert!(err.contains(says), "{spec}: {err}");
        }
        let err = format!("{:#}", parse_worker_host("cpu1").unwrap_err());
        assert!(err.contains("cpu1:SLOTS"), "{err}");
        let (name, grant) = parse_worker_host("cpu1:1-2").unwrap();
        assert_eq!(
            (name.as_str(), grant),
            ("cpu1", SlotGrant::Slots(vec![1, 2]))
        );
    }
}
