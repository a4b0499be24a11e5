//! The operator's modules import one way (docs/architecture.md): `Context` from where it is
//! defined, and no cycle among `controller`, `reconcile`, `aggregate` and the rest.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

use std::path::Path;

use kubefim_testkit::module_graph::{cycles, of_crate};

#[test]
fn the_operator_modules_form_no_cycle_and_only_main_wires_the_controller() {
    let graph = of_crate(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(graph.len() > 8, "the graph was read: {graph:?}");
    assert_eq!(
        cycles(&graph),
        Vec::<std::collections::BTreeSet<String>>::new(),
        "{graph:#?}"
    );
    for (module, deps) in &graph {
        assert!(
            !deps.contains("controller"),
            "{module} imports controller: {deps:?}"
        );
    }
}
