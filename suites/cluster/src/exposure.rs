//! What a run exposes beyond loopback: the host's listening TCP sockets
//! (from /proc/net/tcp and tcp6) and the engine's port bindings of a
//! cluster's containers. Everything the project publishes binds 127.0.0.1.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::docker::{self, DockerError};
use crate::provider::LABEL;

/// TCP sockets in LISTEN state on this host's network namespace.
pub fn listening() -> BTreeSet<SocketAddr> {
    let mut found = BTreeSet::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(table) = std::fs::read_to_string(file) else { continue };
        found.extend(table.lines().skip(1).filter_map(listen_entry));
    }
    found
}

/// One row of /proc/net/tcp{,6}: `sl local_address rem_address st ...`,
/// the address in hex as the kernel stores it (little-endian 32-bit words).
fn listen_entry(row: &str) -> Option<SocketAddr> {
    let fields: Vec<&str> = row.split_whitespace().collect();
    if fields.get(3) != Some(&"0A") {
        return None;
    }
    let (ip, port) = fields.get(1)?.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> = (0..ip.len() / 8)
        .map(|i| u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).map(u32::from_be))
        .collect::<Result<_, _>>()
        .ok()?;
    let ip = match words.as_slice() {
        [a] => IpAddr::V4(Ipv4Addr::from(a.to_be_bytes())),
        [a, b, c, d] => {
            let bytes: Vec<u8> = [a, b, c, d].iter().flat_map(|w| w.to_be_bytes()).collect();
            IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// `container port -> host address` of every container of cluster `name`.
pub async fn bindings(name: &str) -> Result<Vec<String>, DockerError> {
    let filter = format!("label={LABEL}={name}");
    let containers = docker::docker(&["ps", "--filter", &filter, "--format", "{{.Names}}"]).await?;
    let mut found = Vec::new();
    for container in containers.lines() {
        for line in docker::docker(&["port", container]).await?.lines() {
            found.push(format!("{container}: {line}"));
        }
    }
    Ok(found)
}

/// The listeners and bindings that are not on loopback, one line each.
pub fn beyond_loopback(new_listeners: &BTreeSet<SocketAddr>, bindings: &[String]) -> Vec<String> {
    let mut found: Vec<String> =
        new_listeners.iter().filter(|a| !a.ip().is_loopback()).map(|a| format!("listening on {a}")).collect();
    found.extend(
        bindings
            .iter()
            .filter(|b| b.rsplit_once(" -> ").is_none_or(|(_, to)| !to.starts_with("127.0.0.1:")))
            .map(|b| format!("published {b}")),
    );
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_listening_sockets_as_the_kernel_writes_them() {
        let v4 = "   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1";
        assert_eq!(listen_entry(v4), Some("127.0.0.1:8080".parse().expect("addr")));
        let any = "   2: 00000000:01BB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1";
        assert_eq!(listen_entry(any), Some("0.0.0.0:443".parse().expect("addr")));
        let established = "   3: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000 0 0 1 1";
        assert_eq!(listen_entry(established), None);
        let v6 = "   4: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 0 0 0 0 0 1 1";
        assert_eq!(listen_entry(v6), Some("[::1]:8080".parse().expect("addr")));
    }

    #[test]
    fn names_what_is_published_or_listening_beyond_loopback() {
        let listeners: BTreeSet<SocketAddr> =
            ["127.0.0.1:80", "0.0.0.0:6443"].iter().map(|a| a.parse().expect("addr")).collect();
        let bindings = ["n-server: 443/tcp -> 127.0.0.1:32768".to_owned(), "n-server: 80/tcp -> 0.0.0.0:32769".into()];
        assert_eq!(
            beyond_loopback(&listeners, &bindings),
            ["listening on 0.0.0.0:6443", "published n-server: 80/tcp -> 0.0.0.0:32769"]
        );
    }
}
