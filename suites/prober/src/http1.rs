//! One HTTP/1.1 request on a new connection (`Connection: close`), as a client
//! without keep-alive sends it: every request is routed afresh (kube-proxy
//! picks an endpoint per connection), so endpoint churn shows request by
//! request. Errors are classified, not retried.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Answer, Kind, POD_DRAINING, SERVED_BY};

/// Linux's "connection in progress" (std's `ErrorKind::InProgress` is not
/// stable yet): a non-blocking connect's usual first answer.
const EINPROGRESS: i32 = 115;

/// The most of an answer read: the status line and headers are what count.
const READ_LIMIT: usize = 64 * 1024;

fn io_kind(e: &std::io::Error) -> Kind {
    match e.kind() {
        ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe
        | ErrorKind::UnexpectedEof => Kind::Reset,
        ErrorKind::TimedOut => Kind::Timeout,
        _ => Kind::Connect,
    }
}

/// What is sent: the method, the path, and a JSON body for a POST.
#[derive(Debug, Clone)]
pub struct Request {
    pub host: String,
    pub path: String,
    pub json_body: Option<String>,
}

impl Request {
    fn bytes(&self) -> Vec<u8> {
        let (host, path) = (&self.host, &self.path);
        let common = format!("Host: {host}\r\nUser-Agent: cbam-prober\r\nConnection: close\r\n");
        match &self.json_body {
            None => format!("GET {path} HTTP/1.1\r\n{common}\r\n"),
            Some(body) => format!(
                "POST {path} HTTP/1.1\r\n{common}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        }
        .into_bytes()
    }
}

/// The answer of a raw response, if it has a whole status line and header
/// block: its status, the `x-served-by` pod, whether that pod was draining.
pub fn parse(raw: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(raw);
    let (head, _) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let (mut pod, mut draining) = (None, false);
    for (name, value) in lines.filter_map(|l| l.split_once(':')) {
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case(SERVED_BY) {
            pod = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case(POD_DRAINING) {
            draining = value == "true";
        }
    }
    Some(Answer::status(status, pod).draining(draining))
}

/// Starts a non-blocking connect to `addr`, so the source port the kernel
/// chose is known before any answer: a request that times out still says
/// which port it used (conntrack keys its DNAT decision by it, and a reused
/// port can inherit a dead endpoint's entry).
fn start_connect(addr: SocketAddr) -> std::io::Result<(TcpStream, Option<u16>)> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(EINPROGRESS) || e.kind() == ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    let port = socket.local_addr().ok().and_then(|a| a.as_socket()).map(|a| a.port());
    Ok((TcpStream::from_std(socket.into())?, port))
}

async fn exchange(addr: SocketAddr, mut stream: TcpStream, request: &Request) -> Answer {
    let connected = async {
        stream.writable().await?;
        stream.take_error()?.map_or(Ok(()), Err)
    };
    if let Err(e) = connected.await {
        return Answer::error(Kind::Connect, format!("connect {addr}: {e}"));
    }
    if let Err(e) = stream.write_all(&request.bytes()).await {
        return Answer::error(io_kind(&e), format!("send: {e}"));
    }
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&chunk[..n]);
                if raw.len() >= READ_LIMIT {
                    break;
                }
            }
            Err(e) => {
                // A reset after a whole answer was read still answered.
                return parse(&raw).unwrap_or_else(|| Answer::error(io_kind(&e), format!("read: {e}")));
            }
        }
    }
    parse(&raw).unwrap_or_else(|| {
        Answer::error(Kind::Reset, format!("closed after {} bytes, before a whole answer", raw.len()))
    })
}

/// Sends `request` to `addr` and reads its answer, within `timeout`.
pub async fn send(addr: SocketAddr, request: &Request, timeout: Duration) -> Answer {
    let (stream, port) = match start_connect(addr) {
        Ok(started) => started,
        Err(e) => return Answer::error(Kind::Connect, format!("connect {addr}: {e}")),
    };
    let answer = match tokio::time::timeout(timeout, exchange(addr, stream, request)).await {
        Ok(answer) => answer,
        Err(_) => Answer::error(Kind::Timeout, format!("no whole answer within {} ms", timeout.as_millis())),
    };
    answer.from_port(port)
}

/// GET `path` from `addr` with `Host: host`, within `timeout`.
pub async fn get(addr: SocketAddr, host: &str, path: &str, timeout: Duration) -> Answer {
    let request = Request { host: host.to_owned(), path: path.to_owned(), json_body: None };
    send(addr, &request, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn reads_the_status_the_answering_pod_and_whether_it_drains() {
        let raw = b"HTTP/1.1 503 Service Unavailable\r\nX-Served-By: cbam-api-7d9f-abcde\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(parse(raw), Some(Answer::status(503, Some("cbam-api-7d9f-abcde".to_owned()))));
        let draining = b"HTTP/1.1 200 OK\r\nx-pod-draining: true\r\n\r\n{}";
        assert_eq!(parse(draining), Some(Answer::status(200, None).draining(true)));
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\n"), None, "headers not complete");
    }

    #[test]
    fn a_post_carries_its_json_body_and_length() {
        let request = Request { host: "h".into(), path: "/runs?wait=true".into(), json_body: Some("{\"a\":1}".into()) };
        let text = String::from_utf8(request.bytes()).expect("ascii");
        assert!(text.starts_with("POST /runs?wait=true HTTP/1.1\r\n"), "{text}");
        assert!(text.contains("Content-Length: 7\r\n") && text.ends_with("\r\n\r\n{\"a\":1}"), "{text}");
    }

    async fn server(answer: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn classifies_answers_refusals_and_early_closes() {
        let t = Duration::from_secs(2);
        let ok = server(b"HTTP/1.1 200 OK\r\nx-served-by: p1\r\n\r\n{}").await;
        let answer = get(ok, "h", "/health", t).await;
        assert!(answer.local_port.is_some_and(|p| p != ok.port()), "the source port is recorded: {answer:?}");
        assert_eq!(answer.from_port(None), Answer::status(200, Some("p1".into())));
        let busy = server(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        assert_eq!(get(busy, "h", "/", t).await.kind, Kind::ServerError);
        let closes = server(b"").await;
        assert_eq!(get(closes, "h", "/", t).await.kind, Kind::Reset);
        // A port nothing listens on: bind one, then free it.
        let free = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr");
        assert_eq!(get(free, "h", "/", t).await.kind, Kind::Connect);
    }

    #[tokio::test]
    async fn a_silent_server_is_a_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _held = tokio::spawn(async move {
            let conn = listener.accept().await;
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(conn);
        });
        let answer = get(addr, "h", "/", Duration::from_millis(200)).await;
        assert_eq!(answer.kind, Kind::Timeout);
        assert!(answer.local_port.is_some(), "a request that timed out still says its source port");
    }
}
