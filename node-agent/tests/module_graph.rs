//! The agent's modules import one way (docs/architecture.md): no cycle among them, and the
//! narrow modules stay below the ones that wire them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

use std::path::Path;

use kubefim_testkit::module_graph::{cycles, of_crate};

#[test]
fn the_agent_modules_form_no_cycle() {
    let graph = of_crate(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(graph.len() > 15, "the graph was read: {graph:?}");
    assert_eq!(
        cycles(&graph),
        Vec::<std::collections::BTreeSet<String>>::new(),
        "{graph:#?}"
    );
}

#[test]
fn the_state_has_one_owner_and_its_records_are_a_leaf() {
    let graph = of_crate(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    for (module, below) in [
        (
            "records",
            &["store", "outbox", "diff", "scan", "agent", "cluster"][..],
        ),
        (
            "store",
            &["outbox", "diff", "scan", "agent", "cluster", "realtime"],
        ),
        ("diff", &["store", "outbox", "scan", "agent"]),
        ("realtime", &["agent", "scan", "store", "schedule"]),
    ] {
        let deps = &graph[module];
        for upper in below {
            assert!(!deps.contains(*upper), "{module} imports {upper}: {deps:?}");
        }
    }
}
