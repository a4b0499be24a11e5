//! What the kubefim binaries share to be observed: logs on stderr, an error and its sources on
//! one log line, and the HTTP endpoint that serves `/metrics`, `/healthz` and `/readyz`.
//!
//! It knows nothing of Kubernetes, files or metric names: each binary brings its own registry
//! through [`Exposition`].

use std::{net::SocketAddr, sync::Arc};

use http_body_util::Full;
use hyper::{Request, Response, body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;

/// An error and its sources on one line, for logs and for the message a binary exits with.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        // A wrapper that already prints its cause (`"{path}: {source}; do this"`) would
        // otherwise repeat it: each cause is said once.
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

/// Whether `stream` takes colour: only a terminal, and never when NO_COLOR is set.
pub fn colour_on(stream: &impl std::io::IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Sends logs to stderr, as text or as JSON lines, at the level RUST_LOG sets (default info).
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour_on(&std::io::stderr()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// What the endpoint serves.
pub trait Exposition: Send + Sync + 'static {
    /// The Prometheus text exposition of every metric.
    fn render(&self) -> String;
    /// Whether `/readyz` answers 200; the default is ready as soon as the endpoint is up.
    fn ready(&self) -> bool {
        true
    }
}

/// The content type of the Prometheus text format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Binds `addr` (`host:port`); separate from [`serve`] so a bind failure is reported before
/// anything else starts.
pub async fn bind(addr: &str) -> std::io::Result<tokio::net::TcpListener> {
    let socket: SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    tokio::net::TcpListener::bind(socket).await
}

/// The status, content type and body of the answer to `path`.
pub fn answer(path: &str, source: &dyn Exposition) -> (u16, &'static str, String) {
    match path {
        "/metrics" => (200, METRICS_CONTENT_TYPE, source.render()),
        "/healthz" => (200, "text/plain", "ok\n".to_string()),
        "/readyz" if source.ready() => (200, "text/plain", "ready\n".to_string()),
        "/readyz" => (
            503,
            "text/plain",
            "not ready: caches not synced yet\n".to_string(),
        ),
        _ => (404, "text/plain", "not found: try /metrics\n".to_string()),
    }
}

/// Serves the endpoint on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, source: Arc<dyn Exposition>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin on the same error.
                tracing::warn!(error = %e, "the metrics endpoint cannot accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                continue;
            }
        };
        let source = source.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let (status, content_type, body) = answer(request.uri().path(), source.as_ref());
                async move {
                    Response::builder()
                        .status(status)
                        .header("content-type", content_type)
                        .body(Full::new(Bytes::from(body)))
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read the store")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn an_error_chain_names_every_source_in_order() {
        let error = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(error_chain(&error), "cannot read the store: disk on fire");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read /etc/x: {0}")]
    struct SaysItsCause(#[source] std::io::Error);

    #[test]
    fn a_cause_the_message_already_says_is_not_repeated() {
        let error = SaysItsCause(std::io::Error::from(std::io::ErrorKind::NotFound));
        let chain = error_chain(&error);
        assert_eq!(
            chain,
            format!(
                "cannot read /etc/x: {}",
                std::io::Error::from(std::io::ErrorKind::NotFound)
            )
        );
        let error = Outer(std::io::Error::other("disk on fire"));
        let twice = Outer(std::io::Error::other(error_chain(&error)));
        assert_eq!(
            error_chain(&twice),
            "cannot read the store: cannot read the store: disk on fire"
        );
    }

    struct Fixed(bool);
    impl Exposition for Fixed {
        fn render(&self) -> String {
            "kubefim_up 1\n".into()
        }
        fn ready(&self) -> bool {
            self.0
        }
    }

    #[test]
    fn readiness_follows_the_source_and_unknown_paths_are_404() {
        assert_eq!(answer("/metrics", &Fixed(false)).2, "kubefim_up 1\n");
        assert_eq!(answer("/readyz", &Fixed(false)).0, 503);
        assert_eq!(answer("/readyz", &Fixed(true)).0, 200);
        assert_eq!(answer("/healthz", &Fixed(false)).0, 200);
        assert_eq!(answer("/secret", &Fixed(true)).0, 404);
    }
}
