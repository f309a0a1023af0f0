//! The UDP socket a QUIC endpoint runs on: socket buffers, the largest packet they can take many
//! of, and segmentation-offload batches that always fit in one UDP datagram, so packets may be as
//! large as the path allows (64 KB on loopback, 9 000-byte jumbo frames).
//!
//! quinn 0.11 hands the socket up to 10 packets of the connection's current packet size as one
//! GSO batch, and Linux sends a batch as one UDP datagram that the NIC (or loopback) cuts up: a
//! batch over 65 507 bytes is refused with `EMSGSIZE` and quinn counts every packet in it as lost.
//! This socket splits such a batch into sends that fit, so packet size and batching are
//! independent: 1 500-byte packets still go ten per `sendmsg`, 64 KB packets one per `sendmsg`.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::{Context as _, Result};
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, Runtime, UdpPoller};

use super::tls::MIN_MTU;

/// Largest UDP payload over IPv4 (65 535 − 20 IP − 8 UDP header bytes), and so the largest GSO
/// batch the kernel accepts in one `sendmsg`.
pub const MAX_DATAGRAM: usize = 65_507;

/// Largest datagram the kernel's receive offload (GRO) hands over in one piece: `GRO_MAX_SIZE`
/// (8 × 65 535 bytes, the ceiling of "BIG TCP" settings; 65 536 by default).
const GRO_MAX_BYTES: usize = 8 * 65_535;

/// Socket buffer size asked for on every endpoint (the kernel grants at most
/// `net.core.{r,w}mem_max`, doubled).
const SOCKET_BUFFER: usize = 16 << 20;

/// The largest packet an endpoint takes is its receive buffer over this. Measured in the capacity
/// bench (8 workers, megabyte tensors): with the 416 KiB a stock kernel grants, 13 312-byte
/// packets overflowed it until quinn's black-hole detection pinned packets at 1 200 bytes; with
/// 8 MiB, 64 KB packets lost nothing.
const PACKETS_PER_RECEIVE_BUFFER: usize = 64;

/// The largest UDP payload worth taking with a receive buffer of `granted` bytes: room for
/// [`PACKETS_PER_RECEIVE_BUFFER`] of them, within QUIC's minimum ([`MIN_MTU`]) and
/// [`MAX_DATAGRAM`].
pub fn payload_for_buffer(granted: usize) -> u16 {
    (granted / PACKETS_PER_RECEIVE_BUFFER).clamp(usize::from(MIN_MTU), MAX_DATAGRAM) as u16
}

/// A bound UDP socket ready for a quinn endpoint.
pub struct EndpointSocket {
    /// The socket, GSO batches fitted (see [`FittedBatches`]).
    pub socket: Arc<dyn AsyncUdpSocket>,
    /// The largest UDP payload this endpoint accepts: what its receive buffer has room for, or a
    /// configured MTU if that is larger.
    pub max_payload: u16,
}

/// Binds `bind` with large socket buffers and works out the largest payload to accept, at least
/// `mtu` (a configured `net.mtu`) when there is one.
pub fn bind_endpoint_socket(
    bind: SocketAddr,
    runtime: &dyn Runtime,
    mtu: Option<u16>,
) -> Result<EndpointSocket> {
    let socket = UdpSocket::bind(bind).with_context(|| format!("cannot bind UDP {bind}"))?;
    // Room for a few tensors' worth of datagrams: the kernel's default (≈ 200 KiB) overflows under
    // a single megabyte burst, and the losses that follow also make quinn's black-hole detector
    // pin the MTU at its minimum.
    let sock = socket2::SockRef::from(&socket);
    for (what, result) in [
        ("receive", sock.set_recv_buffer_size(SOCKET_BUFFER)),
        ("send", sock.set_send_buffer_size(SOCKET_BUFFER)),
    ] {
        if let Err(e) = result {
            tracing::warn!(
                "cannot raise the UDP {what} buffer of {bind} to {SOCKET_BUFFER} bytes: {e}"
            );
        }
    }
    let granted = sock.recv_buffer_size().unwrap_or(0);
    let fits = payload_for_buffer(granted);
    if usize::from(fits) < MAX_DATAGRAM {
        tracing::info!(
            "the UDP receive buffer of {bind} is {granted} bytes (the kernel's net.core.rmem_max \
             caps it): packets of at most {fits} bytes; `sysctl -w \
             net.core.rmem_max={SOCKET_BUFFER}` lets them grow to {MAX_DATAGRAM} where the path \
             allows (loopback, jumbo frames)"
        );
    }
    let max_payload = mtu.map_or(fits, |m| m.max(fits));
    let socket = runtime
        .wrap_udp_socket(socket)
        .with_context(|| format!("UDP socket {bind}"))?;
    Ok(EndpointSocket {
        socket: FittedBatches::wrap(socket, max_payload),
        max_payload,
    })
}

/// Packets of `segment` bytes that fit in one [`MAX_DATAGRAM`] batch (at least one).
pub fn segments_per_send(segment: usize) -> usize {
    (MAX_DATAGRAM / segment.max(1)).max(1)
}

/// Of `offered` GRO segments, as many as a receive slot needs for payloads up to `max_payload`
/// to hold any datagram the kernel coalesces (at least one).
fn receive_segments(offered: usize, max_payload: u16) -> usize {
    let needed = GRO_MAX_BYTES.div_ceil(usize::from(max_payload.max(1)));
    offered.min(needed).max(1)
}

/// Wraps the runtime's UDP socket: `try_send` fits batches, `max_receive_segments` sizes receive
/// slots for the endpoint's payload; every other method is the inner socket's.
pub struct FittedBatches {
    inner: Arc<dyn AsyncUdpSocket>,
    /// The endpoint's largest accepted UDP payload (what quinn sizes receive slots by).
    max_payload: u16,
}

impl FittedBatches {
    /// `inner`, for an endpoint accepting payloads up to `max_payload`, with its GSO batches cut
    /// to fit one UDP datagram each.
    pub fn wrap(inner: Arc<dyn AsyncUdpSocket>, max_payload: u16) -> Arc<dyn AsyncUdpSocket> {
        Arc::new(FittedBatches { inner, max_payload })
    }
}

impl fmt::Debug for FittedBatches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FittedBatches")
            .field("inner", &self.inner)
            .field("max_payload", &self.max_payload)
            .finish()
    }
}

impl AsyncUdpSocket for FittedBatches {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    /// Sends `transmit` as batches of whole packets of at most [`MAX_DATAGRAM`] bytes each. When
    /// the socket turns full after the first batch went out, the rest is dropped (quinn detects
    /// those packets as lost and resends them, as it does after any failed send) rather than
    /// reported `WouldBlock`, which would make quinn send the first batch again.
    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        let Some(segment) = transmit.segment_size else {
            return self.inner.try_send(transmit);
        };
        if transmit.contents.len() <= MAX_DATAGRAM {
            return self.inner.try_send(transmit);
        }
        let per_send = segments_per_send(segment);
        for (i, batch) in transmit.contents.chunks(segment * per_send).enumerate() {
            let part = Transmit {
                destination: transmit.destination,
                ecn: transmit.ecn,
                contents: batch,
                // A lone packet goes without segmentation offload: some kernels refuse a GSO
                // send whose size is a single segment.
                segment_size: (batch.len() > segment).then_some(segment),
                src_ip: transmit.src_ip,
            };
            match self.inner.try_send(&part) {
                Ok(()) => {}
                Err(e) if i > 0 && e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    /// quinn sizes each receive slot as the endpoint's largest payload × this: with 64 KB
    /// payloads the inner socket's 64 GRO segments would make 32 slots of 4 MB (134 MB of address
    /// space per endpoint). A slot of [`GRO_MAX_BYTES`] holds any coalesced datagram.
    fn max_receive_segments(&self) -> usize {
        receive_segments(self.inner.max_receive_segments(), self.max_payload)
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// One `try_send` a fake socket was asked for: its bytes and segment size.
    type Sent = (Vec<u8>, Option<usize>);

    /// What a fake socket was asked to send.
    type Sends = Mutex<Vec<Sent>>;

    /// Records every send; refuses with `WouldBlock` from send number `full_from` on.
    #[derive(Debug)]
    struct Recorder {
        sends: Sends,
        full_from: usize,
    }

    #[derive(Debug)]
    struct AlwaysWritable;

    impl UdpPoller for AlwaysWritable {
        fn poll_writable(self: Pin<&mut Self>, _: &mut Context) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncUdpSocket for Recorder {
        fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
            Box::pin(AlwaysWritable)
        }
        fn try_send(&self, t: &Transmit) -> io::Result<()> {
            let mut sends = self.sends.lock().map_err(|_| io::ErrorKind::Other)?;
            if sends.len() >= self.full_from {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            sends.push((t.contents.to_vec(), t.segment_size));
            Ok(())
        }
        fn poll_recv(
            &self,
            _: &mut Context,
            _: &mut [IoSliceMut<'_>],
            _: &mut [RecvMeta],
        ) -> Poll<io::Result<usize>> {
            Poll::Pending
        }
        fn local_addr(&self) -> io::Result<SocketAddr> {
            Ok(([127, 0, 0, 1], 1).into())
        }
        fn max_transmit_segments(&self) -> usize {
            10
        }
        fn max_receive_segments(&self) -> usize {
            64
        }
    }

    /// Sends `packets` packets of `segment` bytes as one transmit through a [`FittedBatches`]
    /// whose socket turns full at send `full_from`; returns the result and the sends made.
    fn send_batch(
        segment: usize,
        packets: usize,
        full_from: usize,
    ) -> (io::Result<()>, Vec<Sent>, Vec<u8>) {
        let recorder = Arc::new(Recorder {
            sends: Mutex::new(Vec::new()),
            full_from,
        });
        let fitted = FittedBatches::wrap(recorder.clone(), MAX_DATAGRAM as u16);
        let contents: Vec<u8> = (0..segment * packets).map(|i| (i % 251) as u8).collect();
        let result = fitted.try_send(&Transmit {
            destination: ([127, 0, 0, 1], 2).into(),
            ecn: None,
            contents: &contents,
            segment_size: (packets > 1).then_some(segment),
            src_ip: None,
        });
        let sends = recorder.sends.lock().map(|s| s.clone()).unwrap_or_default();
        (result, sends, contents)
    }

    #[test]
    fn a_batch_over_one_datagram_goes_as_whole_packets_in_sends_that_fit() {
        // Ten jumbo-frame packets (89 720 bytes, which the kernel refuses as one GSO send).
        let (result, sends, contents) = send_batch(8_972, 10, usize::MAX);
        assert!(result.is_ok());
        let sizes: Vec<(usize, Option<usize>)> = sends.iter().map(|(b, s)| (b.len(), *s)).collect();
        assert_eq!(sizes, [(7 * 8_972, Some(8_972)), (3 * 8_972, Some(8_972))]);
        assert_eq!(sends.concat_bytes(), contents);
        // 64 KB packets: one per send, without segmentation offload.
        let (result, sends, contents) = send_batch(MAX_DATAGRAM, 3, usize::MAX);
        assert!(result.is_ok());
        assert!(sends
            .iter()
            .all(|(b, s)| b.len() == MAX_DATAGRAM && s.is_none()));
        assert_eq!(sends.concat_bytes(), contents);
    }

    #[test]
    fn a_batch_that_fits_and_a_lone_packet_pass_unchanged() {
        let (result, sends, contents) = send_batch(6_550, 10, usize::MAX);
        assert!(result.is_ok());
        assert_eq!(sends, [(contents, Some(6_550))]);
        let (result, sends, contents) = send_batch(MAX_DATAGRAM, 1, usize::MAX);
        assert!(result.is_ok());
        assert_eq!(sends, [(contents, None)]);
    }

    #[test]
    fn a_full_socket_blocks_before_the_first_send_and_drops_the_rest_after_it() {
        // Full at once: quinn must wait and retry the whole transmit.
        let (result, sends, _) = send_batch(MAX_DATAGRAM, 3, 0);
        assert_eq!(result.map_err(|e| e.kind()), Err(io::ErrorKind::WouldBlock));
        assert!(sends.is_empty());
        // Full after the first packet: the packet sent is not sent again, the rest count as lost.
        let (result, sends, contents) = send_batch(MAX_DATAGRAM, 3, 1);
        assert!(result.is_ok());
        assert_eq!(sends, [(contents[..MAX_DATAGRAM].to_vec(), None)]);
    }

    #[test]
    fn packets_grow_with_the_receive_buffer_granted() {
        assert_eq!(payload_for_buffer(0), 1_200);
        // A stock kernel: 212 992-byte rmem_max, doubled.
        assert_eq!(payload_for_buffer(425_984), 6_656);
        assert_eq!(payload_for_buffer(8 << 20), MAX_DATAGRAM as u16);
        assert_eq!(segments_per_send(1_200), 54);
        assert_eq!(segments_per_send(MAX_DATAGRAM), 1);
    }

    #[test]
    fn receive_slots_hold_the_largest_coalesced_datagram() {
        for payload in [1_200u16, 6_656, 9_000, MAX_DATAGRAM as u16] {
            let segments = receive_segments(64, payload);
            // quinn's slot: min(payload, 64 KiB) × segments.
            let slot = usize::from(payload).min(64 * 1024) * segments;
            assert!(
                slot >= GRO_MAX_BYTES.min(64 * usize::from(payload)),
                "{payload}: {segments} segments"
            );
        }
        assert_eq!(receive_segments(64, MAX_DATAGRAM as u16), 9);
        assert_eq!(receive_segments(1, MAX_DATAGRAM as u16), 1);
    }

    /// The bytes of all sends, in order.
    trait ConcatBytes {
        fn concat_bytes(&self) -> Vec<u8>;
    }

    impl ConcatBytes for Vec<Sent> {
        fn concat_bytes(&self) -> Vec<u8> {
            self.iter().flat_map(|(b, _)| b.iter().copied()).collect()
        }
    }
}
