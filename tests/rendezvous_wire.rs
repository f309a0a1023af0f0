//! Exact averages through a real rendezvous over loopback QUIC, in every wire dtype: each member
//! sends a different part, and every member gets back the same average, bit for bit — the mean
//! (`decen::node_mean`, slot order) of the parts as the rendezvous received them (rounded to the
//! wire dtype), itself rounded once more on the way out. The rendezvous converts one average once
//! for all its members (the core shares the mean, the shell shares the converted tensor); this
//! pins that what each member receives is still exactly its own correct copy.

use std::net::SocketAddr;
use std::time::Duration;

use candle_core::Device;
use lagom::algo::AlgorithmName;
use lagom::config::Config;
use lagom::data::DatasetName;
use lagom::decen::{node_mean, ReduceKind};
use lagom::model::ModelName;
use lagom::net::{
    client_endpoint, connect, recv, send, send_as, ClusterCa, NodeIdentity, SlotGrant,
    TransportSettings,
};
use lagom::node::{load_split, start_server_node};
use lagom::proto::{frame_limit, Message, Role, WireDtype};
use lagom::run::RunDir;
use lagom::server::NEW_PROCESS;

const MEMBERS: usize = 3;
const AVERAGES: u64 = 3;

/// What one member received for each average: the contributor count and the values.
type Received = Vec<(u32, Vec<f32>)>;

/// Member `w`'s part for average `round`: values of every magnitude and sign, different per
/// member and round, most of them not representable in a half precision.
fn part(w: usize, round: u64, len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let x = ((i * 7 + w * 13 + round as usize * 5) % 97) as f32 - 48.0;
            x * 0.010_37 * (1.0 + w as f32 * 0.31) + 1e-5 * i as f32
        })
        .collect()
}

/// Joins as slot `w`, contributes to `AVERAGES` averages and returns what it received for each.
async fn member(
    identity: NodeIdentity,
    addr: SocketAddr,
    w: usize,
    layout_hash: u64,
    len: usize,
    dtype: WireDtype,
) -> anyhow::Result<Received> {
    let mut transport = TransportSettings::for_params(len);
    transport.wire_dtype = dtype;
    let endpoint = client_endpoint(&identity, &transport)?;
    let conn = connect(&endpoint, addr).await?;
    let hello = Message::Hello {
        role: Role::Worker,
        worker: w as u32,
        incarnation: NEW_PROCESS,
        layout_hash,
        params_len: len as u64,
        device: "test".into(),
        peer_port: 1,
        wire_dtype: dtype,
    };
    send(&conn, hello).await?;
    let limit = frame_limit(3 * len);
    let mut iteration = loop {
        match recv(&conn, limit).await? {
            Some(Message::Start { iteration, .. }) => break iteration,
            Some(_) => {}
            None => anyhow::bail!("the rendezvous closed the connection"),
        }
    };
    let mut received = Vec::new();
    for round in 0..AVERAGES {
        let reduce = Message::Reduce {
            worker: w as u32,
            iteration,
            kind: ReduceKind::Gradients,
            values: part(w, round, len),
        };
        send_as(&conn, reduce, dtype).await?;
        loop {
            match recv(&conn, limit).await? {
                Some(Message::Reduced {
                    iteration: i,
                    contributors,
                    values,
                    ..
                }) if i == iteration => {
                    received.push((contributors, values));
                    break;
                }
                Some(Message::Stop { reason }) => anyhow::bail!("stopped: {reason}"),
                Some(_) => {}
                None => anyhow::bail!("the rendezvous closed the connection"),
            }
        }
        iteration += 1;
        send(
            &conn,
            Message::Progress {
                worker: w as u32,
                iteration,
            },
        )
        .await?;
    }
    conn.close(0u32.into(), b"done");
    Ok(received)
}

/// Runs `MEMBERS` members against an in-process rendezvous with `dtype` on the wire; returns the
/// model's length and each member's received averages.
fn averages_over_quic(dtype: WireDtype) -> (usize, Vec<Received>) {
    let mut config = Config::default();
    config.algorithm.name = AlgorithmName::AllreduceSgd;
    config.cluster.workers = MEMBERS;
    config.data.name = DatasetName::Synthetic;
    config.model.name = ModelName::Mlp;
    config.server.updates = 1_000;
    config.server.eval_every = 0;
    config.server.checkpoint_every = 0;
    config.server.checkpoint_every_s = 0.0;
    config.net.wire_dtype = dtype;
    let dir = tempfile::tempdir().expect("tempdir");
    let run = RunDir::create(dir.path()).expect("run dir");
    actix::System::new().block_on(async move {
        let ca = ClusterCa::generate("test", Duration::from_secs(3_600)).expect("ca");
        let server_id = ca.issue_server("test-rendezvous").expect("server id").0;
        let split = load_split(&config).expect("data");
        let bind = ([127, 0, 0, 1], 0).into();
        let node = start_server_node(&config, split, &Device::Cpu, &run, &server_id, bind)
            .expect("rendezvous");
        let req = node.requirements;
        let members = actix::Arbiter::new();
        let mut results = Vec::new();
        for w in 0..MEMBERS {
            let id = ca
                .issue_worker(&format!("test-{w}"), &SlotGrant::Slots(vec![w]))
                .expect("worker id")
                .0;
            let (tx, rx) = tokio::sync::oneshot::channel();
            let (addr, hash, len) = (node.addr, req.layout_hash, req.params_len);
            members.spawn(async move {
                let _ = tx.send(member(id, addr, w, hash, len, dtype).await);
            });
            results.push(rx);
        }
        let mut received = Vec::new();
        for r in results {
            let got = tokio::time::timeout(Duration::from_secs(120), r)
                .await
                .expect("a member finished in time")
                .expect("the member's task ran");
            received.push(got.expect("the member's averages"));
        }
        members.stop();
        node.endpoint.close(0u32.into(), b"done");
        (req.params_len, received)
    })
}

#[test]
fn every_member_receives_the_exact_average_in_every_wire_dtype() {
    for dtype in [WireDtype::F32, WireDtype::Bf16, WireDtype::F16] {
        let (len, received) = averages_over_quic(dtype);
        for round in 0..AVERAGES {
            let arrived: Vec<Vec<f32>> = (0..MEMBERS)
                .map(|w| dtype.rounded(part(w, round, len)))
                .collect();
            let expected = dtype.rounded(node_mean(&arrived));
            if dtype != WireDtype::F32 {
                assert_ne!(
                    expected,
                    node_mean(
                        &(0..MEMBERS)
                            .map(|w| part(w, round, len))
                            .collect::<Vec<_>>()
                    ),
                    "{dtype}: the rounding is visible in this data"
                );
            }
            for (w, averages) in received.iter().enumerate() {
                let (contributors, values) = &averages[round as usize];
                assert_eq!(*contributors as usize, MEMBERS, "{dtype}, member {w}");
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert!(
                    bits(values) == bits(&expected),
                    "{dtype}, member {w}, average {round}: not the exact average"
                );
            }
        }
    }
}
