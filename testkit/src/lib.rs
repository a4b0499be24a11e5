//! The mock API server of every crate's API-conversation tests (the kube-rs controller-rs
//! `ApiServerVerifier` pattern): a `Client` whose requests arrive on a tower-test handle, where
//! the test asserts each method, URI and body and answers it.
//!
//! A dev-dependency only: nothing here may ever be reached from a shipped binary.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

pub mod module_graph;

use std::time::Duration;

use http::{Method, Request, Response};
use kube::{Client, client::Body};
use serde_json::Value;

/// The test's side of the mock API server.
pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;
/// Where the answer to one request goes.
pub type Responder = tower_test::mock::SendResponse<Response<Body>>;

/// How long a test waits for a request it expects.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A client whose every request arrives on the returned handle.
pub fn mock() -> (Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

/// The next request and its responder; panics when none arrives within [`REQUEST_TIMEOUT`].
pub async fn next_request(handle: &mut Handle) -> (Request<Body>, Responder) {
    tokio::time::timeout(REQUEST_TIMEOUT, handle.next_request())
        .await
        .expect("no request arrived")
        .expect("the client hung up")
}

/// The JSON body of a request (Null when empty).
pub async fn body_of(request: Request<Body>) -> Value {
    let bytes = request.into_body().collect_bytes().await.unwrap();
    if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    }
}

/// Answers a request with `status` and a JSON body.
pub fn respond(send: Responder, status: u16, body: Value) {
    send.send_response(
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap(),
    );
}

/// A Kubernetes `Status` body, as the API server sends with an error code.
pub fn status_body(code: u16, reason: &str, message: &str) -> Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Status", "status": "Failure",
        "code": code, "reason": reason, "message": message,
    })
}

/// Receives the next request, checks its method and URI, answers it with `status` and
/// `response`, and returns its JSON body.
pub async fn expect(handle: &mut Handle, method: Method, uri: &str, status: u16, response: Value) -> Value {
    let (request, send) = next_request(handle).await;
    assert_eq!(
        (request.method(), request.uri().to_string()),
        (&method, uri.to_string()),
        "unexpected request"
    );
    let body = body_of(request).await;
    respond(send, status, response);
    body
}

/// Fails when another request arrives within 200 ms.
pub async fn nothing_more(handle: &mut Handle) {
    // Ok(None): the client is gone, so nothing more can come; Err: nothing came in time.
    if let Ok(Some((request, _))) =
        tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await
    {
        panic!("unexpected request: {} {}", request.method(), request.uri());
    }
}
