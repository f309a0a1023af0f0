//! Telling a refused TLS handshake — a certificate the other side does not accept, which no
//! retry can fix — from a peer that is not there yet.

use quinn::ConnectionError;

/// The first TLS alert code in QUIC's transport error space (RFC 9001 §4.8: 0x100 + alert).
const CRYPTO_ERROR: u64 = 0x100;

/// [`handshake_refusal`] of the reason `connection` was closed for, if it is closed. (TLS 1.3
/// finishes the client's handshake before the server has checked the client's certificate, so a
/// refused worker sees the refusal as the connection closing.)
pub fn closed_by_refusal(connection: &quinn::Connection) -> Option<String> {
    handshake_refusal(&anyhow::Error::new(connection.close_reason()?))
}

/// When `error` is a handshake ended by a TLS alert, what happened in words (who refused whose
/// certificate, and the alert); `None` for anything a retry may fix (a timeout, a closed port).
pub fn handshake_refusal(error: &anyhow::Error) -> Option<String> {
    let failure = error
        .chain()
        .find_map(|c| c.downcast_ref::<ConnectionError>())?;
    let (code, by_peer, detail) = match failure {
        ConnectionError::ConnectionClosed(close) => (
            u64::from(close.error_code),
            true,
            String::from_utf8_lossy(&close.reason).into_owned(),
        ),
        ConnectionError::TransportError(e) => (u64::from(e.code), false, e.reason.clone()),
        _ => return None,
    };
    let alert = code.checked_sub(CRYPTO_ERROR).filter(|&a| a <= 0xff)?;
    let what = alert_name(alert as u8);
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    };
    Some(if by_peer {
        format!("the peer refused this node's certificate (TLS alert {what}{detail})")
    } else {
        format!("this node refused the peer's certificate (TLS alert {what}{detail})")
    })
}

/// The name of TLS alert `alert` (RFC 8446 §6), with what it usually means for a cluster.
fn alert_name(alert: u8) -> String {
    let name = match alert {
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        48 => "unknown_ca: the certificate comes from another cluster's CA",
        49 => "access_denied",
        51 => "decrypt_error: the certificate's signature does not verify (another cluster's CA?)",
        116 => "certificate_required: no certificate was presented",
        120 => "no_application_protocol: not a lagom node",
        _ => return format!("{alert}"),
    };
    format!("{alert} {name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_from_either_side_are_refusals_and_timeouts_are_not() {
        let closed = quinn::ConnectionError::ConnectionClosed(quinn::ConnectionClose {
            error_code: quinn::TransportErrorCode::crypto(48),
            frame_type: None,
            reason: bytes::Bytes::new(),
        });
        let why = handshake_refusal(&anyhow::Error::new(closed).context("handshake failed"));
        let why = why.expect("an alert from the peer is a refusal");
        assert!(
            why.contains("the peer refused") && why.contains("unknown_ca"),
            "{why}"
        );
        let local = quinn::ConnectionError::TransportError(quinn_proto::TransportError {
            code: quinn::TransportErrorCode::crypto(42),
            frame: None,
            reason: "invalid peer certificate: UnknownIssuer".into(),
        });
        let why = handshake_refusal(&anyhow::Error::new(local)).expect("a local alert too");
        assert!(
            why.contains("this node refused") && why.contains("UnknownIssuer"),
            "{why}"
        );
        let timeout = anyhow::Error::new(quinn::ConnectionError::TimedOut);
        assert_eq!(handshake_refusal(&timeout), None);
        assert_eq!(handshake_refusal(&anyhow::anyhow!("no route")), None);
    }
}
