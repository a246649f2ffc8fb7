//! Which TLS versions the ingress accepts, from the server's first answer to
//! a ClientHello written by hand: rustls cannot offer TLS 1.0 or 1.1 at all,
//! so a client library can never show that the ingress refuses them. Only
//! the handshake's first flight is exchanged; no key is ever used.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) const TLS1_0: u16 = 0x0301;
pub(crate) const TLS1_1: u16 = 0x0302;
pub(crate) const TLS1_2: u16 = 0x0303;
pub(crate) const TLS1_3: u16 = 0x0304;

/// The server's answer to one ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// A ServerHello choosing this version.
    Accepted(u16),
    /// An alert (its description code) or a closed connection.
    Refused(String),
}

pub(crate) fn name(version: u16) -> String {
    match version {
        TLS1_0 => "TLS 1.0".into(),
        TLS1_1 => "TLS 1.1".into(),
        TLS1_2 => "TLS 1.2".into(),
        TLS1_3 => "TLS 1.3".into(),
        other => format!("version 0x{other:04x}"),
    }
}

fn vec8(body: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::try_from(body.len()).unwrap_or(u8::MAX)];
    out.extend_from_slice(body);
    out
}

fn vec16(body: &[u8]) -> Vec<u8> {
    let mut out = u16::try_from(body.len()).unwrap_or(u16::MAX).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn extension(kind: u16, body: &[u8]) -> Vec<u8> {
    let mut out = kind.to_be_bytes().to_vec();
    out.extend(vec16(body));
    out
}

/// A ClientHello offering exactly `versions` (highest first) for `host`.
pub(crate) fn client_hello(host: &str, versions: &[u16], random: [u8; 32]) -> Vec<u8> {
    let highest = versions.first().copied().unwrap_or(TLS1_2);
    let tls13 = versions.contains(&TLS1_3);
    let mut suites: Vec<u16> = Vec::new();
    if tls13 {
        suites.extend([0x1301, 0x1302, 0x1303]);
    }
    // ECDHE with AES-GCM (1.2), then the CBC suites 1.0 and 1.1 know.
    suites.extend([0xc02f, 0xc02b, 0xc030, 0xc02c, 0xc013, 0xc009, 0xc014, 0xc00a, 0x002f, 0x0035]);
    let suites: Vec<u8> = suites.iter().flat_map(|s| s.to_be_bytes()).collect();
    let mut server_name = vec![0u8];
    server_name.extend(vec16(host.as_bytes()));
    let mut extensions = extension(0x0000, &vec16(&server_name));
    extensions.extend(extension(0x000a, &vec16(&[0x00, 0x1d, 0x00, 0x17])));
    extensions.extend(extension(0x000b, &vec8(&[0x00])));
    extensions.extend(extension(0x000d, &vec16(&[0x08, 0x04, 0x04, 0x03, 0x04, 0x01, 0x05, 0x01, 0x02, 0x01])));
    if tls13 {
        let listed: Vec<u8> = versions.iter().flat_map(|v| v.to_be_bytes()).collect();
        extensions.extend(extension(0x002b, &vec8(&listed)));
        // An x25519 share: any 32 bytes are a public key; the handshake stops
        // at the server's first flight.
        let mut share = vec![0x00, 0x1d];
        share.extend(vec16(&random));
        extensions.extend(extension(0x0033, &vec16(&share)));
    }
    let legacy = if tls13 { TLS1_2 } else { highest };
    let mut body = legacy.to_be_bytes().to_vec();
    body.extend_from_slice(&random);
    body.extend(vec8(&random)); // a session id (the middlebox-compatible form)
    body.extend(vec16(&suites));
    body.extend(vec8(&[0x00]));
    body.extend(vec16(&extensions));
    let length = u32::try_from(body.len()).unwrap_or(0).to_be_bytes();
    let mut handshake = vec![0x01, length[1], length[2], length[3]];
    handshake.extend(body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend(vec16(&handshake));
    record
}

/// The version a ServerHello (its handshake body) chose: the
/// supported_versions extension where present, else its version field.
fn chosen_version(hello: &[u8]) -> Option<u16> {
    let version = u16::from_be_bytes([*hello.first()?, *hello.get(1)?]);
    let mut at = 2 + 32;
    at += 1 + usize::from(*hello.get(at)?); // session id
    at += 2 + 1; // cipher suite, compression
    let Some(ext) = hello.get(at..at + 2) else { return Some(version) };
    let end = (at + 2 + usize::from(u16::from_be_bytes([ext[0], ext[1]]))).min(hello.len());
    at += 2;
    while at + 4 <= end {
        let kind = u16::from_be_bytes([hello[at], hello[at + 1]]);
        let len = usize::from(u16::from_be_bytes([hello[at + 2], hello[at + 3]]));
        if kind == 0x002b && len == 2 {
            return Some(u16::from_be_bytes([*hello.get(at + 4)?, *hello.get(at + 5)?]));
        }
        at += 4 + len;
    }
    Some(version)
}

/// Reads the server's first record and says what it means.
pub(crate) fn read_answer(record: &[u8]) -> Answer {
    match record {
        [0x16, _, _, _, _, 0x02, _, _, _, hello @ ..] => match chosen_version(hello) {
            Some(v) => Answer::Accepted(v),
            None => Answer::Refused("a truncated ServerHello".into()),
        },
        [0x15, _, _, _, _, _level, description, ..] => Answer::Refused(format!("alert {description}")),
        [] => Answer::Refused("connection closed".into()),
        other => Answer::Refused(format!("an unexpected record of type {}", other[0])),
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsProbeError {
    #[error("connect to {0}")]
    Connect(SocketAddr, #[source] std::io::Error),
    #[error("send a ClientHello to {0}")]
    Send(SocketAddr, #[source] std::io::Error),
    #[error("hear from {addr} within {limit:?}")]
    Silent { addr: SocketAddr, limit: Duration },
}

/// Offers `versions` to `addr` with `host` as SNI.
pub(crate) async fn offer(
    addr: SocketAddr,
    host: &str,
    versions: &[u16],
    limit: Duration,
) -> Result<Answer, TlsProbeError> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| TlsProbeError::Connect(addr, e))?;
        let random: [u8; 32] = std::array::from_fn(|i| u8::try_from((i * 37 + 11) % 251).unwrap_or(0));
        stream.write_all(&client_hello(host, versions, random)).await.map_err(|e| TlsProbeError::Send(addr, e))?;
        let mut header = [0u8; 5];
        if stream.read_exact(&mut header).await.is_err() {
            return Ok(Answer::Refused("connection closed".into()));
        }
        let length = usize::from(u16::from_be_bytes([header[3], header[4]])).min(16 * 1024);
        let mut body = vec![0u8; length];
        if stream.read_exact(&mut body).await.is_err() {
            return Ok(Answer::Refused("connection closed mid-record".into()));
        }
        let mut record = header.to_vec();
        record.extend(body);
        Ok(read_answer(&record))
    };
    tokio::time::timeout(limit, exchange).await.map_err(|_| TlsProbeError::Silent { addr, limit })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hello_is_one_well_formed_handshake_record() {
        let hello = client_hello("cbam.greenlang.io", &[TLS1_0], [7; 32]);
        assert_eq!(&hello[..3], &[0x16, 0x03, 0x01]);
        assert_eq!(usize::from(u16::from_be_bytes([hello[3], hello[4]])), hello.len() - 5);
        assert_eq!(hello[5], 0x01, "ClientHello");
        assert_eq!(&hello[9..11], &TLS1_0.to_be_bytes(), "offers TLS 1.0 only");
        assert!(hello.windows(17).any(|w| w == b"cbam.greenlang.io"), "carries the SNI");
        let modern = client_hello("h", &[TLS1_3, TLS1_2], [7; 32]);
        assert_eq!(&modern[9..11], &TLS1_2.to_be_bytes(), "TLS 1.3 hides behind the 1.2 legacy version");
    }

    #[test]
    fn reads_acceptance_refusal_and_the_chosen_version() {
        // ServerHello 1.0: version, random, empty session id, suite, compression, no extensions.
        let mut hello = vec![0x16, 0x03, 0x01, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0x01];
        hello.extend([0u8; 32]);
        hello.extend([0x00, 0xc0, 0x13, 0x00]);
        assert_eq!(read_answer(&hello), Answer::Accepted(TLS1_0));
        // ServerHello 1.3: legacy 1.2 plus supported_versions 0x0304.
        let mut hello13 = vec![0x16, 0x03, 0x03, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0x03];
        hello13.extend([0u8; 32]);
        hello13.extend([0x00, 0x13, 0x01, 0x00, 0x00, 0x06, 0x00, 0x2b, 0x00, 0x02, 0x03, 0x04]);
        assert_eq!(read_answer(&hello13), Answer::Accepted(TLS1_3));
        assert_eq!(read_answer(&[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 70]), Answer::Refused("alert 70".into()));
        assert_eq!(read_answer(&[]), Answer::Refused("connection closed".into()));
    }
}
