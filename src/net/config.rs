//! `[net]`: where the server listens, where workers dial, which certificates a node uses.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::proto::WireDtype;

/// `[net]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetConfig {
    /// The server's listening address (`--role server`).
    pub listen: String,
    /// The server's address as workers dial it (`--role worker`).
    pub server: String,
    /// Directory written by `lagom certs` (needed by `server` and `worker`; `local` makes its own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certs: Option<PathBuf>,
    /// This node's certificate name in `certs` (`NAME.pem`, `NAME.key`).
    pub node: String,
    /// A worker's slot, 0-based (`--role worker`).
    pub worker: usize,
    /// Seconds a new connection has to say `Hello`.
    pub hello_timeout_s: f64,
    /// QUIC keep-alive interval, seconds.
    pub keep_alive_s: f64,
    /// A peer silent this long is gone (its connection closes; a synchronous round goes on
    /// without it). Seconds.
    pub idle_timeout_s: f64,
    /// Longest wait between a worker's reconnection attempts, seconds.
    pub reconnect_max_s: f64,
    /// A worker sends a `Heartbeat` this often, seconds (whatever its compute is doing).
    pub heartbeat_s: f64,
    /// The server drops a worker it has heard nothing from (no heartbeat, no gradient) for this
    /// long, seconds: it is gone, and a synchronous round goes on without it.
    pub heartbeat_timeout_s: f64,
    /// Where a decentralized worker takes its peers' connections (`HOST:PORT`; port 0 = any).
    /// The server tells the peers this port at the address it sees the worker connect from.
    pub peer_listen: String,
    /// How long a decentralized worker waits for a peer's message before it counts that peer
    /// as absent for the iteration, seconds.
    pub peer_wait_s: f64,
    /// How long a synchronous round (or an exact average, or a report, of a decentralized run)
    /// waits for a worker that heartbeats but delivers nothing; then that worker is dropped (its
    /// connection closed; if it is alive it rejoins). Seconds.
    pub round_timeout_s: f64,
    /// The path MTU (largest UDP payload, bytes) when it is known, e.g. 8 972 on a jumbo-frame
    /// network or 65 507 on loopback: packets start there and never shrink below it. 0 = discover
    /// it (from 1 200 bytes up; back to 1 200 where large packets vanish).
    pub mtu: u16,
    /// The precision of tensors on the wire — gradients, parameters, gossip: `f32` (exact),
    /// `bf16` or `f16` (half the bytes, rounded to nearest even; the server keeps `f32`). Every
    /// node of a run must say the same: the server refuses a worker that does not.
    pub wire_dtype: WireDtype,
    /// How a parameter-server worker compresses its gradients: `none`, or `topk` (only the
    /// `topk_fraction` largest coordinates, the rest kept and added to the next gradient).
    pub compress: Compression,
    /// The fraction of coordinates a `topk` worker sends per gradient, in (0, 0.5].
    pub topk_fraction: f64,
    /// Gradients (per worker) over which a `topk` worker's fraction falls geometrically from 25 %
    /// to `topk_fraction`; 0 = none.
    pub topk_warmup: u64,
}

/// `net.compress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Every coordinate of every gradient.
    #[default]
    None,
    /// Top-k sparsification with error feedback (`net.topk_fraction`).
    Topk,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            listen: "0.0.0.0:7070".into(),
            server: "127.0.0.1:7070".into(),
            certs: None,
            node: "server".into(),
            worker: 0,
            hello_timeout_s: 10.0,
            keep_alive_s: 2.0,
            idle_timeout_s: 10.0,
            reconnect_max_s: 5.0,
            heartbeat_s: 2.0,
            heartbeat_timeout_s: 10.0,
            peer_listen: "0.0.0.0:0".into(),
            peer_wait_s: 5.0,
            round_timeout_s: 120.0,
            mtu: 0,
            wire_dtype: WireDtype::F32,
            compress: Compression::None,
            topk_fraction: 0.01,
            topk_warmup: 0,
        }
    }
}

/// The longest time any `net` setting may name: a year (a longer one is a typo, and durations
/// near `u64::MAX` seconds cannot be represented at all).
const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

impl NetConfig {
    /// Checks value ranges; returns every problem as (key, message).
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        for (key, v) in [
            ("net.hello_timeout_s", self.hello_timeout_s),
            ("net.keep_alive_s", self.keep_alive_s),
            ("net.idle_timeout_s", self.idle_timeout_s),
            ("net.reconnect_max_s", self.reconnect_max_s),
            ("net.heartbeat_s", self.heartbeat_s),
            ("net.heartbeat_timeout_s", self.heartbeat_timeout_s),
            ("net.peer_wait_s", self.peer_wait_s),
            ("net.round_timeout_s", self.round_timeout_s),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= MAX_SECONDS) {
                problems.push((
                    key,
                    format!("must be a number of seconds > 0 and at most {MAX_SECONDS} (a year), got {v}"),
                ));
            }
        }
        if self.mtu != 0 && !(super::MIN_MTU..=super::MAX_UDP_PAYLOAD).contains(&self.mtu) {
            problems.push((
                "net.mtu",
                format!(
                    "must be 0 (discover) or from {} to {} bytes of UDP payload, got {}",
                    super::MIN_MTU,
                    super::MAX_UDP_PAYLOAD,
                    self.mtu
                ),
            ));
        }
        if !(self.topk_fraction > 0.0 && self.topk_fraction <= 0.5) {
            problems.push((
                "net.topk_fraction",
                format!(
                    "must be in (0, 0.5] (beyond half the coordinates a dense gradient is \
                     smaller), got {}",
                    self.topk_fraction
                ),
            ));
        }
        if self.keep_alive_s >= self.idle_timeout_s {
            problems.push((
                "net.keep_alive_s",
                format!(
                    "must be below net.idle_timeout_s ({}), got {}",
                    self.idle_timeout_s, self.keep_alive_s
                ),
            ));
        }
        if self.heartbeat_s >= self.heartbeat_timeout_s {
            problems.push((
                "net.heartbeat_s",
                format!(
                    "must be below net.heartbeat_timeout_s ({}), got {}",
                    self.heartbeat_timeout_s, self.heartbeat_s
                ),
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(net: NetConfig) -> Vec<(&'static str, String)> {
        net.validate()
    }

    #[test]
    fn the_wire_settings_are_checked_with_their_keys() {
        assert!(problems(NetConfig::default()).is_empty());
        for (mtu, ok) in [
            (0u16, true),
            (1_199, false),
            (1_200, true),
            (8_972, true),
            (65_507, true),
            (65_508, false),
        ] {
            let p = problems(NetConfig {
                mtu,
                ..NetConfig::default()
            });
            assert_eq!(p.is_empty(), ok, "mtu {mtu}: {p:?}");
            if !ok {
                assert_eq!(p[0].0, "net.mtu");
                assert!(p[0].1.contains("from 1200 to 65507"), "{}", p[0].1);
            }
        }
        for (fraction, ok) in [
            (0.0, false),
            (0.01, true),
            (0.5, true),
            (0.6, false),
            (f64::NAN, false),
        ] {
            let p = problems(NetConfig {
                topk_fraction: fraction,
                ..NetConfig::default()
            });
            assert_eq!(p.is_empty(), ok, "fraction {fraction}: {p:?}");
            if !ok {
                assert_eq!(p[0].0, "net.topk_fraction");
            }
        }
    }

    #[test]
    fn dtype_and_compression_names_are_the_documented_ones() {
        let net: NetConfig =
            toml::from_str("wire_dtype = \"bf16\"\ncompress = \"topk\"").expect("valid keys");
        assert_eq!(
            (net.wire_dtype, net.compress),
            (WireDtype::Bf16, Compression::Topk)
        );
        assert!(toml::from_str::<NetConfig>("wire_dtype = \"f64\"").is_err());
        assert!(toml::from_str::<NetConfig>("compress = \"zip\"").is_err());
    }
}
