//! Status: what FimNodeStatus, FimWorkspace and MonitoredEntity say, from the agents' reports.

use kube::Api;
use kubefim_crds::{ChangeCategory, FimWorkspace, MonitoredEntity};
use kubefim_e2e::{eventually, scenario::*};

#[tokio::test]
async fn node_workspace_and_entity_status_are_counted() {
    let (env, node) = monitored_node("status", "").await;
    std::fs::write(host_path(&env, &node, "/srv/app/counted"), "x").unwrap();
    eventually(SLOW, "the change", || {
        change_at(&env, &node, "/srv/app/counted", ChangeCategory::Added)
    })
    .await;
    let report = eventually(SLOW, "the node's counts", || async {
        node_status(&env, "ws", &node).await.filter(|s| {
            s.status
                .as_ref()
                .unwrap()
                .change_counts
                .iter()
                .any(|c| c.by_category.added >= 1)
        })
    })
    .await;
    let status = report.status.unwrap();
    assert_eq!(status.entities.len(), 2);
    assert!(status.files_monitored >= 3);
    let workspaces: Api<FimWorkspace> = Api::namespaced(env.client.clone(), &env.namespace);
    let ws = eventually(SLOW, "the workspace status", || async {
        workspaces.get("ws").await.ok().filter(|w| {
            w.status
                .as_ref()
                .is_some_and(|s| s.nodes_reporting == 1 && s.changes.last_7d >= 1)
        })
    })
    .await;
    let status = ws.status.unwrap();
    assert_eq!((status.nodes_selected, status.entities_active), (1, 2));
    let entities: Api<MonitoredEntity> = Api::namespaced(env.client.clone(), &env.namespace);
    eventually(SLOW, "the entity status", || async {
        entities.get("app").await.ok().filter(|e| {
            e.status
                .as_ref()
                .is_some_and(|s| s.nodes_active == 1 && s.files_monitored >= 2)
        })
    })
    .await;
}
