//! kubectl fim: filtering and summarizing as table tests, the CSV export read back by a CSV
//! parser, rendering, and the API conversations (a filtered, paginated list and every patching
//! command) against a tower-test ApiServerVerifier.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

use std::{process::Command, time::Duration};

use http::Method;
use kubectl_fim::{
    Error, api, commands,
    output::{self, Format},
    query::{self, ChangeQuery},
    summary::{self, Dimension},
};
use kubefim_crds::{ChangeCategory, ChangeType, FileChange, FimWorkspace};
use kubefim_testkit::{expect, mock};
use serde_json::{Value, json};

fn change(
    name: &str,
    node: &str,
    change_type: &str,
    category: &str,
    path: &str,
    detected_at: &str,
) -> FileChange {
    serde_json::from_value(json!({
        "apiVersion": "kubefim.dev/v1alpha1", "kind": "FileChange",
        "metadata": {"name": name, "namespace": "fim"},
        "spec": {"workspace": "prod", "entity": "recommended.ssh", "nodeName": node, "type": change_type, "category": category,
                 "path": path, "detectedAt": detected_at, "source": "Scan", "changedAttributes": ["content", "size"],
                 "previous": {"size": 3, "mode": "0644", "hash": "aa"}, "current": {"size": 4, "mode": "0600", "hash": "bb"},
                 "contentDiffTruncated": false}
    }))
    .unwrap()
}

fn now() -> jiff::Timestamp {
    "2026-11-25T12:00:00Z".parse().unwrap()
}

fn sample() -> Vec<FileChange> {
    vec![
        change(
            "a",
            "n1",
            "Files",
            "Modified",
            "/etc/ssh/sshd_config",
            "2026-11-25T11:00:00Z",
        ),
        change(
            "b",
            "n1",
            "Files",
            "Added",
            "/etc/ssh/evil_key",
            "2026-11-24T11:00:00Z",
        ),
        change(
            "c",
            "n2",
            "FileContent",
            "Modified",
            "/etc/hosts",
            "2026-11-20T11:00:00Z",
        ),
        change(
            "d",
            "n2",
            "Registry",
            "Removed",
            "HKLM\\SOFTWARE\\Run",
            "2026-11-01T11:00:00Z",
        ),
    ]
}

#[test]
fn label_selectors_carry_what_the_server_can_filter() {
    let cases: Vec<(ChangeQuery, &str)> = vec![
        (ChangeQuery::default(), ""),
        (
            ChangeQuery {
                nodes: vec!["n1".into()],
                ..Default::default()
            },
            "kubefim.dev/node=n1",
        ),
        (
            ChangeQuery {
                types: vec![ChangeType::Registry, ChangeType::Files],
                workspace: Some("prod".into()),
                ..Default::default()
            },
            "kubefim.dev/workspace=prod,kubefim.dev/type in (Registry,Files)",
        ),
        (
            ChangeQuery {
                categories: vec![ChangeCategory::Added],
                entity: Some("app".into()),
                ..Default::default()
            },
            "kubefim.dev/category=Added,kubefim.dev/entity=app",
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(query.label_selector(), expected);
    }
}

#[test]
fn time_window_and_path_glob_filter_on_the_client() {
    let cases: Vec<(ChangeQuery, Vec<&str>)> = vec![
        (ChangeQuery::default(), vec!["a", "b", "c", "d"]),
        (
            ChangeQuery {
                since: Some(Duration::from_secs(14 * 86_400)),
                ..Default::default()
            },
            vec!["a", "b", "c"],
        ),
        (
            ChangeQuery {
                since: Some(Duration::from_secs(86_400)),
                ..Default::default()
            },
            vec!["a"],
        ),
        (
            ChangeQuery {
                path: Some(query::path_glob("/etc/ssh/*").unwrap()),
                ..Default::default()
            },
            vec!["a", "b"],
        ),
        (
            ChangeQuery {
                path: Some(query::path_glob("/etc/**").unwrap()),
                ..Default::default()
            },
            vec!["a", "b", "c"],
        ),
        (
            ChangeQuery {
                path: Some(query::path_glob("/etc/*").unwrap()),
                ..Default::default()
            },
            vec!["c"],
        ),
    ];
    for (query, expected) in cases {
        let got: Vec<String> = sample()
            .into_iter()
            .filter(|c| query.matches(c, now()))
            .map(|c| c.metadata.name.unwrap())
            .collect();
        assert_eq!(got, expected, "{query:?}");
    }
}

#[test]
fn bad_flag_values_are_named() {
    let err = query::parse_list::<ChangeType>(
        "--type",
        "Files,Registy",
        "Files, FileContent, Services, Registry",
    )
    .unwrap_err();
    assert!(err.to_string().contains("\"Registy\""), "{err}");
    assert_eq!(
        query::parse_list::<ChangeType>("--type", "Registry,Files", "").unwrap(),
        [ChangeType::Registry, ChangeType::Files]
    );
    assert!(
        query::path_glob("/etc/[")
            .unwrap_err()
            .to_string()
            .contains("/etc/[")
    );
}

#[test]
fn summaries_count_by_node_and_type_most_first() {
    // The reference document's query: changes of type Registry or Files, counted by computer and type.
    let query = ChangeQuery {
        types: vec![ChangeType::Registry, ChangeType::Files],
        ..Default::default()
    };
    let selected: Vec<FileChange> = sample()
        .into_iter()
        .filter(|c| query.types.contains(&c.spec.change_type))
        .collect();
    let rows = summary::summarize(&selected, &[Dimension::Node, Dimension::Type]);
    assert_eq!(
        rows,
        vec![
            (vec!["n1".to_string(), "Files".to_string()], 2),
            (vec!["n2".to_string(), "Registry".to_string()], 1)
        ]
    );
    let by_category = summary::summarize(&sample(), &[Dimension::Category]);
    assert_eq!(by_category[0], (vec!["Modified".to_string()], 2));
}

#[test]
fn an_aggregated_change_counts_for_every_change_it_stands_for() {
    let mut folded = change(
        "agg",
        "n3",
        "Files",
        "Aggregated",
        "400 more changes",
        "2026-11-25T11:00:00Z",
    );
    folded.spec.aggregated =
        Some(serde_json::from_value(json!({"count": 400, "byCategory": {"added": 400}})).unwrap());
    let mut changes = sample();
    changes.push(folded);
    assert_eq!(
        summary::summarize(&changes, &[Dimension::Node])[0],
        (vec!["n3".to_string()], 400)
    );
}

#[test]
fn details_are_ordered_by_node_then_path() {
    let mut changes = sample();
    changes.reverse();
    summary::sort_for_details(&mut changes);
    let order: Vec<&str> = changes.iter().map(|c| c.spec.path.as_str()).collect();
    assert_eq!(
        order,
        [
            "/etc/ssh/evil_key",
            "/etc/ssh/sshd_config",
            "/etc/hosts",
            "HKLM\\SOFTWARE\\Run"
        ]
    );
}

/// A change with an actor: a shell of pod team-a/web-0, run by root.
fn with_actor(mut change: FileChange) -> FileChange {
    change.spec.actor = Some(
        serde_json::from_value(json!({
            "pid": 4242, "executable": "/usr/bin/dash", "name": "sh", "commandLine": "sh -c echo x >> f",
            "uid": 0, "user": "root",
            "container": {"id": "ab".repeat(32), "runtime": "containerd"},
            "pod": {"uid": "0b7e3c1a-5d2f-4e6a-9c8b-7a6f5e4d3c2b", "namespace": "team-a", "name": "web-0"}
        }))
        .unwrap(),
    );
    change
}

#[test]
fn changes_are_filtered_by_actor_and_pod_and_export_and_show_them() {
    let mut changes = sample();
    changes[1] = with_actor(changes[1].clone());
    let pick = |query: ChangeQuery| -> Vec<String> {
        changes
            .iter()
            .filter(|c| query.matches(c, now()))
            .map(|c| c.metadata.name.clone().unwrap())
            .collect()
    };
    for wanted in ["root", "sh", "dash", "/usr/bin/dash"] {
        let query = ChangeQuery {
            actor: Some(wanted.into()),
            ..Default::default()
        };
        assert_eq!(pick(query), ["b"], "--actor {wanted}");
    }
    for unwanted in ["bash", "usr", "/usr/bin"] {
        let query = ChangeQuery {
            actor: Some(unwanted.into()),
            ..Default::default()
        };
        assert!(pick(query).is_empty(), "--actor {unwanted}");
    }
    let pod = |value: &str| ChangeQuery {
        pod: Some(query::pod_ref(value).unwrap()),
        ..Default::default()
    };
    assert_eq!(pick(pod("team-a/web-0")), ["b"]);
    assert!(pick(pod("team-a/web-1")).is_empty());
    for bad in ["web-0", "/web-0", "team-a/", "a/b/c"] {
        let error = query::pod_ref(bad).unwrap_err().to_string();
        assert!(
            error.contains(&format!("{bad:?}")) && error.contains("NAMESPACE/NAME"),
            "{error}"
        );
    }

    let text = output::changes_csv(&changes).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(&records[1][column("actorPid")], "4242");
    assert_eq!(&records[1][column("actorExecutable")], "/usr/bin/dash");
    assert_eq!(&records[1][column("actorUser")], "root");
    assert_eq!(&records[1][column("actorPod")], "team-a/web-0");
    assert_eq!(&records[0][column("actorPid")], "", "no actor, no value");

    let shown = commands::render_change(&changes[1], 120);
    assert!(
        shown.contains(
            "Made by: pid 4242, /usr/bin/dash, (sh -c echo x >> f), user root (0), pod team-a/web-0"
        ),
        "{shown}"
    );
}

#[test]
fn csv_export_reads_back_with_a_csv_parser() {
    let mut changes = sample();
    changes[0].spec.path = "/srv/a \"quoted\", with comma\nand newline".into();
    let text = output::changes_csv(&changes).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[0], "detectedAt");
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 4);
    let path = headers.iter().position(|h| h == "path").unwrap();
    assert_eq!(&records[0][path], "/srv/a \"quoted\", with comma\nand newline");
    assert_eq!(
        &records[2][headers.iter().position(|h| h == "type").unwrap()],
        "FileContent"
    );
    assert_eq!(
        &records[0][headers.iter().position(|h| h == "changedAttributes").unwrap()],
        "content size"
    );
    assert_eq!(
        &records[0][headers.iter().position(|h| h == "currentHash").unwrap()],
        "bb"
    );
}

#[test]
fn tables_fit_the_terminal_by_cutting_the_path_from_the_left() {
    let (headers, rows) = output::change_rows(&sample(), false, now());
    let text = output::table(&headers, &rows, 64);
    assert!(text.lines().all(|l| l.chars().count() <= 64), "{text}");
    assert!(text.contains("…"), "{text}");
    assert!(text.lines().next().unwrap().starts_with("NODE"));
    let wide = output::table(&headers, &rows, 200);
    assert!(
        wide.contains("/etc/ssh/sshd_config") && wide.contains("1h"),
        "{wide}"
    );
}

#[test]
fn the_dashboard_and_the_change_view_show_what_matters() {
    let workspace: kubefim_crds::FimWorkspace = serde_json::from_value(json!({
        "apiVersion": "kubefim.dev/v1alpha1", "kind": "FimWorkspace", "metadata": {"name": "prod", "namespace": "fim"}, "spec": {},
        "status": {"nodesSelected": 4, "nodesReporting": 3, "entitiesActive": 31, "changes": {}},
    }))
    .unwrap();
    let dashboard = commands::render_dashboard(&workspace, &sample(), "7d", false);
    assert!(dashboard.contains("Machines reporting   3/4"), "{dashboard}");
    assert!(dashboard.contains("Last change          -"), "{dashboard}");
    assert!(
        !dashboard.contains("Unsupported") && !dashboard.contains("Degraded"),
        "{dashboard}"
    );
    assert!(
        dashboard.contains("Files 2") && dashboard.contains("Modified 2"),
        "{dashboard}"
    );
    assert!(
        dashboard.contains("Busiest nodes        n1 (2), n2 (2)"),
        "{dashboard}"
    );
    assert!(!dashboard.contains('\x1b'), "no colour off a terminal");
    let shown = commands::render_change(&sample()[0], 100);
    assert!(
        shown.contains("mode*") && shown.contains("0644") && shown.contains("0600"),
        "{shown}"
    );
    let mut setcap = sample()[0].clone();
    let current = setcap.spec.current.as_mut().unwrap();
    current.capabilities = Some("cap_setuid+ep".into());
    current.flags = vec!["immutable".into()];
    current.xattrs = vec![kubefim_crds::filechange::XattrState {
        name: "user.origin".into(),
        digest: "0123456789abcdef0123".into(),
        decoded: None,
    }];
    let shown = commands::render_change(&setcap, 120);
    for row in [
        "capabilities*",
        "cap_setuid+ep",
        "flags*",
        "immutable",
        "xattrs*",
        "user.origin=0123456789abcdef…",
    ] {
        assert!(shown.contains(row), "{row} in\n{shown}");
    }
    let entities = commands::render_entities(&workspace, &[], 200);
    assert!(
        entities.contains("usr-bin") && entities.contains("reg-run"),
        "{entities}"
    );
}

fn list(items: Vec<FileChange>, next: Option<&str>) -> Value {
    json!({"apiVersion": "kubefim.dev/v1alpha1", "kind": "FileChangeList", "metadata": {"continue": next.unwrap_or("")}, "items": items})
}

#[tokio::test]
async fn a_filtered_list_is_selected_on_the_server_and_paged() {
    let (client, mut handle) = mock();
    let query = ChangeQuery {
        nodes: vec!["n1".into(), "n2".into()],
        types: vec![ChangeType::Files, ChangeType::Registry],
        since: Some(Duration::from_secs(14 * 86_400)),
        ..Default::default()
    };
    let listing = tokio::spawn(async move {
        api::list_changes(&client, Some("fim"), &query, now())
            .await
            .map_err(|e| e.to_string())
    });
    let base = "/apis/kubefim.dev/v1alpha1/namespaces/fim/filechanges?&labelSelector=kubefim.dev%2Fnode+in+%28n1%2Cn2%29%2Ckubefim.dev%2Ftype+in+%28Files%2CRegistry%29&limit=500";
    let items = sample();
    expect(
        &mut handle,
        Method::GET,
        base,
        200,
        list(items[..2].to_vec(), Some("next")),
    )
    .await;
    expect(
        &mut handle,
        Method::GET,
        &format!("{base}&continue=next"),
        200,
        list(items[2..].to_vec(), None),
    )
    .await;
    let got: Vec<String> = listing
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(got, ["a", "b", "c"], "the change older than --since is dropped");
}

#[tokio::test]
async fn missing_crds_say_how_to_install_them() {
    let (client, mut handle) = mock();
    let listing =
        tokio::spawn(
            async move { api::list_changes(&client, Some("fim"), &ChangeQuery::default(), now()).await },
        );
    expect(&mut handle, Method::GET, "/apis/kubefim.dev/v1alpha1/namespaces/fim/filechanges?&limit=500", 404,
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404, "metadata": {}})).await;
    let err = listing.await.unwrap().unwrap_err();
    assert!(
        matches!(err, Error::CrdsMissing) && err.to_string().contains("helm install"),
        "{err}"
    );
}

fn workspace_json(exclude: &[&str]) -> Value {
    json!({"apiVersion": "kubefim.dev/v1alpha1", "kind": "FimWorkspace", "metadata": {"name": "prod", "namespace": "fim"},
           "spec": {"recommended": {"enabled": true, "exclude": exclude}}})
}

const WS: &str = "/apis/kubefim.dev/v1alpha1/namespaces/fim/fimworkspaces/prod";

#[tokio::test]
async fn every_patching_command_sends_a_merge_patch_as_kubectl_fim() {
    let (client, mut handle) = mock();
    let patch_uri = |path: &str| format!("{path}?&fieldManager=kubectl-fim");

    let c = client.clone();
    let task = tokio::spawn(async move {
        api::set_entity_enabled(&c, "fim", "app", false)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    let entity = json!({"apiVersion": "kubefim.dev/v1alpha1", "kind": "MonitoredEntity", "metadata": {"name": "app", "namespace": "fim"},
                        "spec": {"workspace": "prod", "type": "LinuxFile", "path": "/srv"}});
    let body = expect(
        &mut handle,
        Method::PATCH,
        &patch_uri("/apis/kubefim.dev/v1alpha1/namespaces/fim/monitoredentities/app"),
        200,
        entity,
    )
    .await;
    assert_eq!(body, json!({"spec": {"enabled": false}}));
    task.await.unwrap().unwrap();

    for enabled in [true, false] {
        let c = client.clone();
        let task = tokio::spawn(async move {
            api::set_workspace_enabled(&c, "fim", "prod", enabled)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        let body = expect(
            &mut handle,
            Method::PATCH,
            &patch_uri(WS),
            200,
            workspace_json(&[]),
        )
        .await;
        assert_eq!(body, json!({"spec": {"enabled": enabled}}));
        task.await.unwrap().unwrap();
    }

    let c = client.clone();
    let task = tokio::spawn(async move {
        api::set_recommended_excluded(&c, "fim", "prod", "usr-bin", true)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    expect(&mut handle, Method::GET, WS, 200, workspace_json(&["ssh"])).await;
    let body = expect(
        &mut handle,
        Method::PATCH,
        &patch_uri(WS),
        200,
        workspace_json(&["ssh", "usr-bin"]),
    )
    .await;
    assert_eq!(
        body,
        json!({"spec": {"recommended": {"exclude": ["ssh", "usr-bin"]}}})
    );
    task.await.unwrap().unwrap();

    let c = client.clone();
    let task = tokio::spawn(async move {
        api::set_recommended_excluded(&c, "fim", "prod", "ssh", false)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    expect(
        &mut handle,
        Method::GET,
        WS,
        200,
        workspace_json(&["ssh", "usr-bin"]),
    )
    .await;
    let body = expect(
        &mut handle,
        Method::PATCH,
        &patch_uri(WS),
        200,
        workspace_json(&["usr-bin"]),
    )
    .await;
    assert_eq!(body, json!({"spec": {"recommended": {"exclude": ["usr-bin"]}}}));
    task.await.unwrap().unwrap();

    let c = client.clone();
    let task = tokio::spawn(async move {
        api::accept_baseline(&c, "fim", "prod", "20261125T120000Z")
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    let body = expect(
        &mut handle,
        Method::PATCH,
        &patch_uri(WS),
        200,
        workspace_json(&[]),
    )
    .await;
    assert_eq!(
        body,
        json!({"spec": {"baseline": {"revision": "20261125T120000Z"}}})
    );
    task.await.unwrap().unwrap();

    // An unknown catalog id is refused before any request, naming where the ids are listed.
    let err = api::set_recommended_excluded(&client, "fim", "prod", "usr-bni", true)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("usr-bni") && err.to_string().contains("kubectl fim entities"),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_workspace_says_how_to_find_it() {
    let (client, mut handle) = mock();
    let task = tokio::spawn(async move { api::set_workspace_enabled(&client, "fim", "prod", true).await });
    expect(&mut handle, Method::PATCH, &format!("{WS}?&fieldManager=kubectl-fim"), 404,
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404, "metadata": {}})).await;
    let err = task.await.unwrap().unwrap_err().to_string();
    assert!(
        err.contains("\"prod\"") && err.contains("kubectl get fimws -n fim"),
        "{err}"
    );
}

#[test]
fn every_command_has_help() {
    let binary = env!("CARGO_BIN_EXE_kubectl-fim");
    for command in [
        &[][..],
        &["status"],
        &["changes"],
        &["show"],
        &["nodes"],
        &["entities"],
        &["entity"],
        &["recommended"],
        &["enable"],
        &["disable"],
        &["baseline"],
    ] {
        let output = Command::new(binary).args(command).arg("--help").output().unwrap();
        assert!(output.status.success(), "{command:?}");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("Usage: kubectl fim"), "{command:?}: {text}");
    }
}

#[test]
fn output_formats_are_the_documented_ones() {
    use clap::ValueEnum;
    let names: Vec<String> = Format::value_variants()
        .iter()
        .map(|f| f.to_possible_value().unwrap().get_name().to_string())
        .collect();
    assert_eq!(names, ["table", "wide", "json", "yaml", "csv"]);
}

#[test]
fn the_dashboard_tells_unsupported_nodes_degraded_reasons_and_the_last_change() {
    let workspace: kubefim_crds::FimWorkspace = serde_json::from_value(json!({
        "apiVersion": "kubefim.dev/v1alpha1", "kind": "FimWorkspace", "metadata": {"name": "prod", "namespace": "fim"}, "spec": {},
        "status": {
            "nodesSelected": 5, "nodesReporting": 3, "nodesUnsupported": 2, "entitiesActive": 31, "changes": {},
            "lastChangeTime": "2026-11-25T11:00:00Z",
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Monitoring", "message": "3 of 3 nodes report", "lastTransitionTime": "2026-11-25T10:00:00Z"},
                {"type": "Degraded", "status": "True", "reason": "ReportsRejected", "message": "ReportsRejected on n2", "lastTransitionTime": "2026-11-25T10:00:00Z"}
            ],
        },
    }))
    .unwrap();
    let dashboard = commands::render_dashboard(&workspace, &sample(), "24h", false);
    assert!(dashboard.contains("Machines reporting   3/3"), "{dashboard}");
    assert!(dashboard.contains("Unsupported nodes    2"), "{dashboard}");
    assert!(
        dashboard.contains("Last change          2026-11-25T11:00:00Z ("),
        "{dashboard}"
    );
    assert!(
        dashboard.contains("Degraded: ReportsRejected (ReportsRejected on n2)"),
        "{dashboard}"
    );
    assert!(dashboard.contains("Changes (24h)"), "{dashboard}");
}

/// `sample()` plus a package upgrade folded into one Aggregated change and an accepted change.
fn with_explained() -> Vec<FileChange> {
    let mut changes = sample();
    let mut upgrade = change(
        "e",
        "n1",
        "Files",
        "Aggregated",
        "3 changes explained by the dpkg upgrade of coreutils 9.1-1 -> 9.1-2",
        "2026-11-25T10:00:00Z",
    );
    upgrade.spec.aggregated = Some(serde_json::from_value(json!({
        "count": 3, "byCategory": {"modified": 3}, "samplePaths": ["/usr/bin/ls", "/usr/bin/cp", "/var/lib/dpkg/status"]
    })).unwrap());
    upgrade.spec.attribution = Some(serde_json::from_value(json!({
        "kind": "Package", "manager": "dpkg", "package": "coreutils", "fromVersion": "9.1-1", "toVersion": "9.1-2", "digestVerified": true
    })).unwrap());
    let mut accepted = change(
        "f",
        "n2",
        "Files",
        "Modified",
        "/etc/motd",
        "2026-11-25T09:00:00Z",
    );
    accepted.spec.attribution =
        Some(serde_json::from_value(json!({"kind": "BaselineAccepted", "revision": "r7"})).unwrap());
    changes.extend([upgrade, accepted]);
    changes
}

#[test]
fn unexplained_keeps_only_what_nothing_explains_and_the_views_name_the_explanation() {
    let changes = with_explained();
    let query = ChangeQuery {
        unexplained: true,
        ..Default::default()
    };
    let kept: Vec<&str> = changes
        .iter()
        .filter(|c| query.matches(c, now()))
        .map(|c| c.metadata.name.as_deref().unwrap())
        .collect();
    assert_eq!(kept, ["a", "b", "c", "d"], "no time window was set");
    let (headers, rows) = output::change_rows(&changes, false, now());
    let explained = headers.iter().position(|h| *h == "EXPLAINED BY").unwrap();
    assert_eq!(rows[0][explained], "-");
    assert_eq!(rows[4][explained], "dpkg coreutils 9.1-1 -> 9.1-2");
    assert_eq!(rows[5][explained], "accepted r7");
    let csv = output::changes_csv(&changes).unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    assert_eq!(&records[4][column("attribution")], "Package");
    assert_eq!(&records[4][column("package")], "coreutils");
    assert_eq!(&records[4][column("toVersion")], "9.1-2");
    assert_eq!(&records[4][column("digestVerified")], "true");
    assert_eq!(&records[5][column("acceptedRevision")], "r7");
    assert_eq!(&records[0][column("attribution")], "");
    let by = summary::summarize(&changes, &[Dimension::Attribution]);
    assert_eq!(
        by,
        [
            (vec!["Unexplained".to_string()], 4),
            (vec!["Package".to_string()], 3),
            (vec!["BaselineAccepted".to_string()], 1),
        ]
    );
}

#[test]
fn the_dashboard_separates_unexplained_from_explained_changes() {
    let workspace: FimWorkspace = serde_json::from_value(json!({
        "apiVersion": "kubefim.dev/v1alpha1", "kind": "FimWorkspace",
        "metadata": {"name": "prod", "namespace": "fim"}, "spec": {}
    }))
    .unwrap();
    let dashboard = commands::render_dashboard(&workspace, &with_explained(), "7d", false);
    assert!(dashboard.contains("Changes (7d)      8"), "{dashboard}");
    assert!(
        dashboard.contains("Unexplained          4, explained by packages 3, accepted 1, unverified during package operations 0"),
        "{dashboard}"
    );
}
