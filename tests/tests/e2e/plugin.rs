//! kubectl fim against what the operator and an agent produced.

use std::collections::BTreeMap;

use kubefim_crds::ChangeCategory;
use kubefim_e2e::{binary, eventually, scenario::*};

#[tokio::test]
async fn kubectl_fim_reads_the_data_produced() {
    let (env, node) = monitored_node("plugin", "").await;
    std::fs::write(host_path(&env, &node, "/srv/app/plugin"), "x").unwrap();
    eventually(SLOW, "a change", || {
        change_at(&env, &node, "/srv/app/plugin", ChangeCategory::Added)
    })
    .await;
    let fim = |args: &[&str]| {
        let output = std::process::Command::new(binary("kubectl-fim"))
            .args(args)
            .args(["-n", &env.namespace])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "kubectl fim {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let status = eventually(SLOW, "the dashboard to show the node", || async {
        let text = fim(&["status", "ws"]);
        text.contains("Machines reporting   1/1").then_some(text)
    })
    .await;
    assert!(status.contains("Workspace ws"), "{status}");
    let csv = fim(&["changes", "--since", "1d", "-o", "csv"]);
    assert!(
        csv.starts_with("detectedAt,node,") && csv.contains("/srv/app/plugin"),
        "{csv}"
    );
    let summary = fim(&["changes", "--summarize-by", "node,type"]);
    assert!(summary.contains(&node), "{summary}");
    assert!(fim(&["nodes", "ws"]).contains(&node));
    let counts: BTreeMap<&str, usize> = BTreeMap::from([(
        "recommended",
        fim(&["entities", "ws"]).matches("recommended").count(),
    )]);
    assert!(counts["recommended"] > 10);
}
