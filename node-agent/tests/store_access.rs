//! The async side's access to the store while a scan holds the store's only writer: reads
//! answer, settlements are taken at once and leave the queue's reads before they are written,
//! and they are written once the writer is free. Each test holds a real update open on a
//! thread of its own, as a scan does, and lets it go only after the async calls returned: a call
//! that waited for the writer would never return (the generous timeout turns that into a
//! failure rather than a hang).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

mod common;

use std::{sync::mpsc, time::Duration};

use common::node::Node;
use kubefim_agent::{config::WorkspaceKey, records::BaselineReset};

/// Would only be reached if a call waited for the writer.
const STUCK: Duration = Duration::from_secs(30);

/// Holds an update of `node`'s store open on a thread until the returned sender is used.
fn hold_writer(node: &Node) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (release, released) = mpsc::channel();
    let (held, holding) = mpsc::channel();
    let store = node.agent.store.clone();
    let thread = std::thread::spawn(move || {
        let update = store.update().unwrap();
        held.send(()).unwrap();
        released.recv().unwrap();
        update.abort().unwrap();
    });
    holding.recv().unwrap();
    (release, thread)
}

fn queued_node() -> Node {
    let node = Node::new();
    node.scan();
    node.write("/srv/new", "x");
    assert_eq!(node.scan(), 2, "new file and /srv modified");
    node
}

#[tokio::test]
async fn settlements_are_taken_while_a_scan_holds_the_writer_and_written_once_it_is_free() {
    let node = queued_node();
    let access = node.access();
    let lane = WorkspaceKey::new("fim", "prod");
    let pending = access.pending(&lane, 10).await.unwrap();
    assert_eq!(pending.len(), 2);
    let (release, scan) = hold_writer(&node);

    let (first, _) = &pending[0];
    tokio::time::timeout(STUCK, access.acknowledge(&lane, *first))
        .await
        .expect("an acknowledgement never waits for the scan");
    let left = tokio::time::timeout(STUCK, access.pending(&lane, 10))
        .await
        .expect("a read never waits for the scan")
        .unwrap();
    assert_eq!(
        left.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        [pending[1].0],
        "a record being settled is not sent again"
    );
    assert_eq!(access.depth(None).await.unwrap(), 1);
    assert_eq!(access.depth(Some(&lane)).await.unwrap(), 1);
    assert_eq!(node.depth(), 2, "not written yet: the scan holds the writer");

    release.send(()).unwrap();
    scan.join().unwrap();
    access.flush().await;
    assert_eq!(node.depth(), 1, "written once the writer is free");
    assert_eq!(access.depth(None).await.unwrap(), 1);
}

#[tokio::test]
async fn a_lane_whose_every_record_is_being_settled_has_nothing_left_to_send() {
    let node = queued_node();
    let access = node.access();
    let lane = WorkspaceKey::new("fim", "prod");
    let (release, scan) = hold_writer(&node);
    for (seq, _) in access.pending(&lane, 10).await.unwrap() {
        access.acknowledge(&lane, seq).await;
    }
    assert!(access.lanes().await.unwrap().is_empty());
    release.send(()).unwrap();
    scan.join().unwrap();
    access.flush().await;
    assert_eq!(node.depth(), 0);
}

#[tokio::test]
async fn a_reset_recorded_during_a_scan_is_written_when_the_scan_ends() {
    let node = Node::new();
    node.scan();
    let access = node.access();
    let key = WorkspaceKey::new("fim", "prod");
    let reset = BaselineReset {
        previous_generation: "0123456789abcdef".into(),
        detected_at: jiff::Timestamp::now(),
        baseline_revision: String::new(),
    };
    let (release, scan) = hold_writer(&node);
    let recording = tokio::spawn({
        let (access, key, reset) = (access.clone(), key.clone(), reset.clone());
        async move { access.set_reset(&key, Some(reset)).await }
    });
    // Reads go on meanwhile.
    let facts = tokio::time::timeout(
        STUCK,
        kubefim_agent::cluster::NodeFacts::gather(&access, &key, 1000, jiff::Timestamp::now()),
    )
    .await
    .expect("gathering the node's facts never waits for the scan")
    .unwrap();
    assert_eq!(facts.reset, None, "not written yet");
    release.send(()).unwrap();
    scan.join().unwrap();
    recording.await.unwrap().unwrap();
    assert_eq!(node.agent.store.resets().unwrap().get(&key), Some(&reset));
}
