//! A baseline accept leaves a trace (issue 18): with realtime off, a file changes, then
//! `kubectl fim baseline accept` lands before any scan saw it. The accept reports that change
//! as a FileChange with attribution BaselineAccepted and announces it with a Normal Event on the
//! workspace; the next scan reports nothing more.

use k8s_openapi::api::events::v1::Event;
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams},
};
use kubefim_crds::{AttributionKind, ChangeCategory, FimWorkspace};
use kubefim_e2e::{binary, eventually, scenario::*};

#[tokio::test]
async fn a_baseline_accept_reports_the_change_it_accepts_then_nothing_more() {
    // A long interval: no scheduled scan can come between the change and the accept.
    let (env, node) = monitored_node("accept", "  scan: {interval: 5m, realtime: false}\n").await;
    std::fs::write(host_path(&env, &node, "/srv/app/config.yaml"), "replicas: 9\n").unwrap();
    let accept = std::process::Command::new(binary("kubectl-fim"))
        .args(["baseline", "accept", "ws", "-n", &env.namespace])
        .output()
        .unwrap();
    assert!(
        accept.status.success(),
        "{}",
        String::from_utf8_lossy(&accept.stderr)
    );
    let workspaces: Api<FimWorkspace> = Api::namespaced(env.client.clone(), &env.namespace);
    let revision = workspaces.get("ws").await.unwrap().spec.baseline.revision;
    assert!(!revision.is_empty());

    let change = eventually(SLOW, "the accepted change", || {
        change_at(&env, &node, "/srv/app/config.yaml", ChangeCategory::Modified)
    })
    .await;
    let attribution = change
        .spec
        .attribution
        .clone()
        .expect("the accepted change says so");
    assert_eq!(attribution.kind, AttributionKind::BaselineAccepted);
    assert_eq!(attribution.revision.as_deref(), Some(revision.as_str()));

    let events: Api<Event> = Api::namespaced(env.client.clone(), &env.namespace);
    let event = eventually(SLOW, "the accept's Normal Event", || async {
        events
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("BaselineAccepted"))
    })
    .await;
    assert_eq!(event.type_.as_deref(), Some("Normal"));
    assert_eq!(
        event.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("ws")
    );
    let note = event.note.unwrap_or_default();
    assert!(
        note.contains(&format!("node {node}")) && note.contains("accepted 1 difference"),
        "{note}"
    );

    // Another scan (a configuration change rescans the workspace at once) finds nothing more.
    // Scan times have a resolution of one second: the scan is known by its configuration.
    workspaces
        .patch(
            "ws",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"reporting": {"maxChangesPerScan": 99}}})),
        )
        .await
        .unwrap();
    let (_, config) = eventually(SLOW, "the node's new configuration", || async {
        node_config(&env, &node).await.filter(|(_, c)| {
            c.workspaces
                .iter()
                .any(|w| w.reporting.max_changes_per_scan == 99)
        })
    })
    .await;
    eventually(SLOW, "a scan with the new configuration", || async {
        let status = node_status(&env, "ws", &node).await?.status?;
        (status.config_revision == config.revision && status.last_scan.is_some()).then_some(())
    })
    .await;
    let about_it: Vec<_> = changes(&env, &node)
        .await
        .into_iter()
        .filter(|c| c.spec.path == "/srv/app/config.yaml")
        .collect();
    assert_eq!(about_it.len(), 1, "nothing more: {about_it:#?}");
}
