//! The reporter against a tower-test ApiServerVerifier: every class of answer the API server
//! gives, and that no record, and no workspace, holds up another. Two workspaces of the same
//! name in two namespaces share the node, so their lanes are told apart too.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

mod common;

use std::{sync::Arc, time::Duration};

use common::node::{Node, cluster_workspace, created, filechanges};
use http::Method;
use kubefim_agent::{
    cluster::{RateLimiter, Reporter},
    config::WorkspaceKey,
};
use kubefim_testkit::{body_of, mock, next_request, nothing_more, respond, status_body};

/// A node where fim/prod has three queued changes (two files added, /srv modified) and
/// team-b/prod two (one file added, /srv modified).
fn node_with_two_lanes() -> Node {
    let node = Node::new();
    let (fim, team_b) = (
        cluster_workspace("fim", "prod"),
        cluster_workspace("team-b", "prod"),
    );
    node.scan_workspace(&fim);
    node.scan_workspace(&team_b);
    node.write("/srv/a-first", "1");
    node.write("/srv/b-second", "2");
    assert_eq!(node.scan_workspace(&fim), 3);
    std::fs::remove_file(node.host.path().join("srv/b-second")).unwrap();
    assert_eq!(node.scan_workspace(&team_b), 2, "team-b never saw b-second");
    assert_eq!(
        (node.depth_of("fim", "prod"), node.depth_of("team-b", "prod")),
        (3, 2)
    );
    node
}

#[tokio::test]
async fn each_permanent_answer_dead_letters_its_record_and_the_queue_goes_on() {
    for (code, reason, message) in [
        (404, "NotFound", "namespaces \"fim\" not found"),
        (
            422,
            "Invalid",
            "metadata.labels: Invalid value: must be no more than 63 characters",
        ),
        (413, "RequestEntityTooLarge", "request is too large"),
        (
            403,
            "Forbidden",
            "unable to create new content in namespace fim because it is being terminated",
        ),
        (
            400,
            "BadRequest",
            "the body of the request was in an unknown format",
        ),
    ] {
        let (client, mut handle) = mock();
        let node = Arc::new(node_with_two_lanes());
        let pass = tokio::spawn({
            let (node, client) = (node.clone(), client.clone());
            async move { node.report(&client, Duration::from_secs(5)).await }
        });
        let (refused, send) = next_request(&mut handle).await;
        assert_eq!(
            (refused.method(), refused.uri().to_string()),
            (&Method::POST, filechanges("fim"))
        );
        let refused = body_of(refused).await;
        respond(send, code, status_body(code, reason, message));
        for namespace in ["fim", "fim", "team-b", "team-b"] {
            let (request, send) = next_request(&mut handle).await;
            assert_eq!(
                request.uri().to_string(),
                filechanges(namespace),
                "after a {code}"
            );
            let body = body_of(request).await;
            respond(send, 201, created(&body));
        }
        let pass = pass.await.unwrap();
        nothing_more(&mut handle).await;
        assert_eq!((pass.acknowledged, pass.rejected.len()), (4, 1), "{code}");
        assert_eq!(pass.rejected[0].code, code);
        assert!(
            pass.rejected[0].reason.contains(message),
            "{:?}",
            pass.rejected[0]
        );
        assert_eq!(
            (node.depth(), node.gauge()),
            (0, 0),
            "{code}: nothing stays queued"
        );
        assert_eq!((node.reports("rejected"), node.reports("created")), (1, 4));
        let letters = node.outbox().dead_letters().unwrap();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].code, code);
        assert_eq!(
            letters[0].record.as_ref().unwrap().name,
            refused["metadata"]["name"].as_str().unwrap()
        );
        let rejections = node
            .outbox()
            .rejections(&WorkspaceKey::new("fim", "prod"))
            .unwrap();
        assert_eq!(rejections.count, 1);
        assert!(rejections.last_at.is_some());
        assert_eq!(
            node.outbox()
                .rejections(&WorkspaceKey::new("team-b", "prod"))
                .unwrap()
                .count,
            0,
            "a refusal counts against its own workspace only"
        );
    }
}

#[tokio::test]
async fn a_transient_answer_defers_only_its_workspace() {
    let (client, mut handle) = mock();
    let node = Arc::new(node_with_two_lanes());
    let mut reporter = Reporter::new(
        client.clone(),
        RateLimiter::per_second(100_000.0),
        100,
        Duration::from_secs(5),
    );
    let access = node.access();
    let first = tokio::spawn({
        let (node, access) = (node.clone(), access.clone());
        async move {
            let pass = reporter.pass(&access, &node.agent.metrics).await.unwrap();
            access.flush().await;
            (pass, reporter)
        }
    });
    let (request, send) = next_request(&mut handle).await;
    assert_eq!(request.uri().to_string(), filechanges("fim"));
    respond(
        send,
        500,
        status_body(500, "InternalError", "etcdserver: leader changed"),
    );
    for _ in 0..2 {
        let (request, send) = next_request(&mut handle).await;
        assert_eq!(
            request.uri().to_string(),
            filechanges("team-b"),
            "the other workspace goes on"
        );
        let body = body_of(request).await;
        respond(send, 201, created(&body));
    }
    let (pass, mut reporter) = first.await.unwrap();
    assert_eq!((pass.acknowledged, pass.deferred, pass.rejected.len()), (2, 1, 0));
    assert_eq!(
        node.depth_of("fim", "prod"),
        3,
        "a transient failure keeps the records"
    );
    assert_eq!((node.gauge(), node.reports("failed")), (3, 1));

    // Its lane backs off: the next pass sends nothing for it.
    let second = reporter.pass(&access, &node.agent.metrics).await.unwrap();
    assert_eq!((second.acknowledged, second.deferred), (0, 1));
    nothing_more(&mut handle).await;
    assert_eq!(node.gauge(), 3);
}

#[tokio::test]
async fn an_unreachable_api_server_stops_the_pass_and_keeps_every_record() {
    let (client, mut handle) = mock();
    let node = Arc::new(node_with_two_lanes());
    let pass = tokio::spawn({
        let (node, client) = (node.clone(), client.clone());
        async move { node.report(&client, Duration::from_millis(300)).await }
    });
    let (_request, _never_answered) = next_request(&mut handle).await;
    let pass = pass.await.unwrap();
    assert!(pass.unreachable.unwrap().contains("no answer within"));
    assert_eq!(pass.acknowledged, 0);
    nothing_more(&mut handle).await;
    assert_eq!(
        (node.depth(), node.gauge()),
        (5, 5),
        "the gauge moves on a failed pass too"
    );
}

#[tokio::test]
async fn a_500_and_a_timeout_are_retried_under_the_same_name_until_created() {
    let (client, mut handle) = mock();
    let node = Arc::new(Node::new());
    node.scan();
    node.write("/srv/app.conf", "v2\n");
    node.scan();
    let attempt = |node: Arc<Node>, client: kube::Client| {
        tokio::spawn(async move { node.report(&client, Duration::from_millis(300)).await })
    };
    let mut names = Vec::new();

    let first = attempt(node.clone(), client.clone());
    let (request, send) = next_request(&mut handle).await;
    names.push(body_of(request).await["metadata"]["name"].clone());
    respond(send, 500, status_body(500, "InternalError", "try again"));
    assert_eq!(first.await.unwrap().deferred, 1);
    assert_eq!(node.depth(), 1, "a failed create keeps the change queued");

    let second = attempt(node.clone(), client.clone());
    let (request, _never_answered) = next_request(&mut handle).await;
    names.push(body_of(request).await["metadata"]["name"].clone());
    assert!(second.await.unwrap().unreachable.is_some());
    assert_eq!(node.depth(), 1);

    let third = attempt(node.clone(), client.clone());
    let (request, send) = next_request(&mut handle).await;
    let body = body_of(request).await;
    names.push(body["metadata"]["name"].clone());
    respond(send, 201, created(&body));
    assert_eq!(third.await.unwrap().acknowledged, 1);
    assert_eq!(node.depth(), 0);
    assert!(names.windows(2).all(|w| w[0] == w[1]), "{names:?}");
    assert_eq!((node.reports("failed"), node.reports("created")), (2, 1));
}
