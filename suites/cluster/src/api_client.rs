//! The one way the harness makes a Kubernetes client: from a kubeconfig's
//! `Config`, with kube's default retry turned off. kube 5 retries 429, 503
//! and 504 on its own (up to 15 times, honouring Retry-After), which turns a
//! PodDisruptionBudget's refusal (429) into a late success and hides how
//! long a call took. The harness's waits (`wait::until`) are the one place
//! it retries: bounded, and reporting the last answer seen.

use kube::{Client, Config};

/// A client that returns the API server's first answer.
pub fn client(mut config: Config) -> Result<Client, kube::Error> {
    config.default_retry = false;
    Client::try_from(config)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use k8s_openapi::api::core::v1::Pod;
    use kube::Api;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A server answering every request with the API server's refusal of an
    /// eviction (429, Retry-After 1): the client must return it at once.
    #[tokio::test]
    async fn a_refusal_is_returned_not_retried() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let mut buffer = vec![0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                let body = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": "Cannot evict pod as it would violate the pod's disruption budget.",
                    "reason": "TooManyRequests", "code": 429})
                .to_string();
                let response = format!(
                    "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            }
        });
        let config = Config::new(format!("http://127.0.0.1:{port}").parse().expect("url"));
        let pods: Api<Pod> = Api::namespaced(client(config).expect("client"), "ns");
        // kube's retry would keep asking (Retry-After 1 s, 15 times).
        let answer =
            tokio::time::timeout(std::time::Duration::from_secs(5), pods.get("p")).await.expect("an answer within 5 s");
        assert!(matches!(answer, Err(kube::Error::Api(ref s)) if s.code == 429), "{answer:?}");
        assert_eq!(requests.load(Ordering::SeqCst), 1, "one request, no retry");
    }
}
