//! The Helm chart, checked with the real tools (scripts/install-tools.sh installs them): helm
//! lint and template with default values and every toggle on, the kinds it renders, the agent's
//! security context and probes, cluster-scoped names that two releases never share, promtool on
//! the alert rules with a unit test per alert and on every dashboard query, and every metric a
//! dashboard or a rule queries being one the code exports.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use serde_yaml::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart() -> PathBuf {
    repo().join("charts/kubefim")
}

/// A tool from PATH, or from the repository's .tools/bin where install-tools.sh puts helm.
fn tool(name: &str) -> Command {
    let local = repo().join(".tools/bin").join(name);
    let program = if local.exists() {
        local
    } else {
        PathBuf::from(name)
    };
    let command = Command::new(&program);
    assert!(
        Command::new(&program).arg("--help").output().is_ok(),
        "{name} is not installed: run scripts/install-tools.sh"
    );
    command
}

fn run(mut command: Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn all_toggles() -> PathBuf {
    chart().join("tests/all-toggles.yaml")
}

fn template(values: Option<&Path>) -> Vec<Value> {
    let mut helm = tool("helm");
    helm.args(["template", "kubefim"])
        .arg(chart())
        .args(["--namespace", "kubefim-system"]);
    if let Some(values) = values {
        helm.arg("-f").arg(values);
    }
    documents(&run(helm))
}

/// The chart rendered as release `release` in `namespace`, with `--set` values.
fn template_as(release: &str, namespace: &str, set: &[&str]) -> Vec<Value> {
    let mut helm = tool("helm");
    helm.args(["template", release])
        .arg(chart())
        .args(["--namespace", namespace]);
    for value in set {
        helm.arg("--set").arg(value);
    }
    documents(&run(helm))
}

fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .filter(|doc: &Value| !doc.is_null())
        .collect()
}

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

#[test]
fn helm_lint_strict_passes_with_default_values_and_every_toggle() {
    let mut default = tool("helm");
    default.args(["lint", "--strict"]).arg(chart());
    run(default);
    let mut toggled = tool("helm");
    toggled
        .args(["lint", "--strict"])
        .arg(chart())
        .arg("-f")
        .arg(all_toggles());
    run(toggled);
}

#[test]
fn values_outside_the_schema_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.yaml");
    std::fs::write(&typo, "agent:\n  reportsPerSecnd: 5\n").unwrap();
    let output = tool("helm")
        .args(["template", "kubefim"])
        .arg(chart())
        .arg("-f")
        .arg(&typo)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("reportsPerSecnd"));
}

#[test]
fn every_rendered_object_is_a_kubernetes_kind_or_one_of_ours() {
    let kubernetes = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "DaemonSet",
        "Service",
        "ConfigMap",
        "Lease",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "CustomResourceDefinition",
    ];
    let ours = ["FimWorkspace", "MonitoredEntity", "FileChange", "FimNodeStatus"];
    // The Prometheus operator's kinds, rendered only when asked for.
    let prometheus_operator = ["ServiceMonitor", "PodMonitor", "PrometheusRule"];
    let default: BTreeSet<String> = template(None).iter().map(|d| kind(d).to_string()).collect();
    assert!(
        default.iter().all(|k| kubernetes.contains(&k.as_str())),
        "{default:?}"
    );
    for expected in [
        "Deployment",
        "DaemonSet",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ] {
        assert!(default.contains(expected), "{expected} missing from {default:?}");
    }
    let toggled = template(Some(&all_toggles()));
    for doc in &toggled {
        let k = kind(doc);
        assert!(
            kubernetes.contains(&k) || ours.contains(&k) || prometheus_operator.contains(&k),
            "unknown kind {k}"
        );
        assert!(
            doc["metadata"]["name"].as_str().is_some_and(|n| !n.is_empty()),
            "{k} without a name"
        );
    }
    let toggled_kinds: BTreeSet<&str> = toggled.iter().map(kind).collect();
    for expected in [
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
        "FimWorkspace",
        "ConfigMap",
    ] {
        assert!(
            toggled_kinds.contains(expected),
            "{expected} missing with every toggle on"
        );
    }
    // The default workspace must pass our own admission rules.
    let workspace = toggled.iter().find(|d| kind(d) == "FimWorkspace").unwrap();
    let workspace: kubefim_crds::FimWorkspace = serde_yaml::from_value(workspace.clone()).unwrap();
    workspace.validate_cel().unwrap();
}

#[test]
fn the_crds_ship_in_the_chart_crds_directory() {
    let names: BTreeSet<String> = std::fs::read_dir(chart().join("crds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for crd in kubefim_crds::crds() {
        assert!(
            names.contains(&format!("{}.yaml", crd.spec.names.plural)),
            "{names:?}"
        );
    }
}

/// agent.actors.enabled adds what fanotify and /proc need, and only then: SYS_ADMIN and
/// SYS_PTRACE, the host's PID namespace and listing pods; still not privileged.
#[test]
fn actors_add_sys_admin_sys_ptrace_host_pid_and_pod_listing_only_when_enabled() {
    let pods_listed = |docs: &[Value]| {
        docs.iter().filter(|d| kind(d) == "ClusterRole").any(|role| {
            role["rules"].as_sequence().unwrap().iter().any(|rule| {
                rule["resources"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .any(|r| r == "pods")
            })
        })
    };
    for (set, enabled) in [(vec![], false), (vec!["agent.actors.enabled=true"], true)] {
        let docs = template_as("kubefim", "kubefim-system", &set);
        let daemonset = docs.iter().find(|d| kind(d) == "DaemonSet").unwrap();
        let pod = &daemonset["spec"]["template"]["spec"];
        let security = &pod["containers"][0]["securityContext"];
        let added: Vec<&str> = security["capabilities"]["add"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let expected: &[&str] = if enabled {
            &["DAC_READ_SEARCH", "SYS_ADMIN", "SYS_PTRACE"]
        } else {
            &["DAC_READ_SEARCH"]
        };
        assert_eq!(added, expected);
        assert_eq!(pod["hostPID"].as_bool(), enabled.then_some(true));
        assert_eq!(security["privileged"], Value::Bool(false));
        assert_eq!(pods_listed(&docs), enabled);
        let pod_rule = docs
            .iter()
            .filter(|d| kind(d) == "ClusterRole")
            .flat_map(|role| role["rules"].as_sequence().unwrap().iter())
            .find(|rule| {
                rule["resources"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .any(|r| r == "pods")
            });
        if let Some(rule) = pod_rule {
            assert_eq!(rule["verbs"], serde_yaml::from_str::<Value>("[list]").unwrap());
        }
    }
}

#[test]
fn the_agent_daemonset_is_not_privileged_and_adds_only_dac_read_search() {
    let docs = template(None);
    let daemonset = docs.iter().find(|d| kind(d) == "DaemonSet").unwrap();
    let pod = &daemonset["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["privileged"], Value::Bool(false));
    assert_eq!(security["allowPrivilegeEscalation"], Value::Bool(false));
    assert_eq!(security["readOnlyRootFilesystem"], Value::Bool(true));
    assert_eq!(
        security["capabilities"]["drop"],
        serde_yaml::from_str::<Value>("[ALL]").unwrap()
    );
    assert_eq!(
        security["capabilities"]["add"],
        serde_yaml::from_str::<Value>("[DAC_READ_SEARCH]").unwrap()
    );
    let host = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "host")
        .unwrap();
    assert_eq!(
        (host["mountPath"].as_str(), host["readOnly"].as_bool()),
        (Some("/host"), Some(true))
    );
    assert_eq!(host["mountPropagation"], "HostToContainer");
    assert!(
        host["recursiveReadOnly"].is_null(),
        "Kubernetes accepts recursiveReadOnly only without mount propagation"
    );
    // A startup probe that gives the store time to open (a large one may need repair), then
    // liveness; readiness on /readyz; a grace period covering a scan's stop and the create in
    // flight.
    let startup = &container["startupProbe"];
    assert_eq!(startup["httpGet"]["path"], "/healthz");
    assert!(
        startup["failureThreshold"].as_u64().unwrap() * startup["periodSeconds"].as_u64().unwrap() >= 600,
        "{startup:?}"
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    let env = container["env"].as_sequence().unwrap();
    assert!(
        env.iter()
            .any(|e| e["name"] == "NODE_NAME" && e["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName")
    );
    assert!(
        pod["hostNetwork"].is_null() && pod["hostPID"].is_null(),
        "no host namespaces"
    );
    assert_eq!(
        pod["tolerations"][0]["operator"], "Exists",
        "every node by default"
    );
    assert_eq!(daemonset["spec"]["updateStrategy"]["type"], "RollingUpdate");
    // A good neighbour: a CPU limit (which is also the scan thread count) and low priority.
    assert_eq!(container["resources"]["limits"]["cpu"], "1");
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.contains(&"--scan-priority=low"), "{args:?}");

    let operator = docs.iter().find(|d| kind(d) == "Deployment").unwrap();
    let pod = &operator["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], Value::Bool(true));
    assert_eq!(
        pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"],
        Value::Bool(true)
    );
    assert!(pod["volumes"].is_null(), "the operator has no host access");
    assert_eq!(operator["spec"]["replicas"], 2);
}

#[test]
fn the_agent_may_do_only_what_the_design_allows() {
    let docs = template(None);
    let role = docs
        .iter()
        .find(|d| kind(d) == "ClusterRole" && d["metadata"]["name"] == "kubefim-agent.kubefim-system")
        .unwrap();
    let mut grants: Vec<String> = Vec::new();
    for rule in role["rules"].as_sequence().unwrap() {
        for resource in rule["resources"].as_sequence().unwrap() {
            for verb in rule["verbs"].as_sequence().unwrap() {
                grants.push(format!(
                    "{}:{}",
                    resource.as_str().unwrap(),
                    verb.as_str().unwrap()
                ));
            }
        }
    }
    grants.sort();
    assert_eq!(
        grants,
        [
            "events:create",
            "events:patch",
            "filechanges:create",
            "fimnodestatuses/status:create",
            "fimnodestatuses/status:patch",
            "fimnodestatuses:create",
            "fimnodestatuses:get",
            "fimnodestatuses:patch",
        ]
    );
    let policy = docs
        .iter()
        .find(|d| kind(d) == "ValidatingAdmissionPolicy")
        .unwrap();
    let rule = policy["spec"]["validations"][0]["expression"].as_str().unwrap();
    assert!(
        rule.contains("authentication.kubernetes.io/node-name") && rule.contains("object.spec.nodeName"),
        "{rule}"
    );
}

fn rules(docs: &[Value]) -> Value {
    docs.iter().find(|d| kind(d) == "PrometheusRule").unwrap()["spec"].clone()
}

#[test]
fn promtool_checks_the_rules_and_unit_tests_every_alert() {
    let docs = template(Some(&all_toggles()));
    let spec = rules(&docs);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_yaml::to_string(&spec).unwrap(),
    )
    .unwrap();
    let mut tests: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart().join("tests/alerts.test.yaml")).unwrap())
            .unwrap();
    tests["rule_files"] = serde_yaml::from_str("[rules.yaml]").unwrap();
    std::fs::write(
        dir.path().join("alerts.test.yaml"),
        serde_yaml::to_string(&tests).unwrap(),
    )
    .unwrap();

    let mut check = tool("promtool");
    check.args(["check", "rules"]).arg(dir.path().join("rules.yaml"));
    run(check);
    let mut unit = tool("promtool");
    unit.args(["test", "rules", "alerts.test.yaml"])
        .current_dir(dir.path());
    run(unit);

    let alerts: BTreeSet<String> = spec["groups"][0]["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r["alert"].as_str().unwrap().to_string())
        .collect();
    let tested: BTreeSet<String> = tests["tests"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_sequence().unwrap().iter())
        .map(|t| t["alertname"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(alerts, tested, "every alert has a unit test");
    assert!(alerts.len() >= 4);
}

/// Every `kubefim_*` metric name in a PromQL expression.
fn metric_names(expression: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expression.as_bytes();
    let mut i = 0;
    while let Some(at) = expression[i..].find("kubefim_") {
        let start = i + at;
        let end = start
            + bytes[start..]
                .iter()
                .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || **b == b'_')
                .count();
        names.insert(expression[start..end].to_string());
        i = end;
    }
    names
}

#[test]
fn dashboards_and_alerts_query_only_metrics_the_code_exports() {
    let mut exported: BTreeSet<String> = kubefim_agent::metrics::Metrics::new("n")
        .names()
        .into_iter()
        .collect();
    exported.extend(kubefim_operator::metrics::Metrics::new().names());
    let histograms: Vec<String> = exported
        .iter()
        .filter(|n| n.ends_with("_seconds"))
        .cloned()
        .collect();
    let known = |name: &str| {
        exported.contains(name)
            || histograms.iter().any(|h| {
                [format!("{h}_bucket"), format!("{h}_sum"), format!("{h}_count")]
                    .iter()
                    .any(|s| s == name)
            })
    };
    let docs = template(Some(&all_toggles()));
    let mut expressions: Vec<String> = rules(&docs)["groups"][0]["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r["expr"].as_str().unwrap().to_string())
        .collect();
    let dashboard = docs
        .iter()
        .find(|d| kind(d) == "ConfigMap" && d["metadata"]["name"] == "kubefim-dashboard")
        .unwrap();
    let json: serde_json::Value =
        serde_json::from_str(dashboard["data"]["kubefim.json"].as_str().unwrap()).unwrap();
    for panel in json["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            expressions.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    for variable in json["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["query"].as_str() {
            expressions.push(query.to_string());
        }
    }
    assert!(expressions.len() >= 15, "{expressions:#?}");
    let mut used = BTreeSet::new();
    for expression in &expressions {
        for name in metric_names(expression) {
            assert!(
                known(&name),
                "{name} (in `{expression}`) is not exported by the agent or the operator"
            );
            used.insert(name);
        }
    }
    for essential in [
        "kubefim_changes_total",
        "kubefim_last_scan_timestamp_seconds",
        "kubefim_files_monitored",
    ] {
        assert!(used.contains(essential), "{essential} unused");
    }
}

#[test]
fn metric_names_are_extracted_from_promql() {
    assert_eq!(
        metric_names(r#"sum(rate(kubefim_changes_total{a="b"}[5m])) / kubefim_files_monitored"#),
        BTreeSet::from([
            "kubefim_changes_total".to_string(),
            "kubefim_files_monitored".to_string()
        ])
    );
}

fn operator_args(docs: &[Value]) -> Vec<String> {
    let operator = docs.iter().find(|d| kind(d) == "Deployment").unwrap();
    operator["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn aggregation_labels(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .filter(|d| kind(d) == "ClusterRole")
        .flat_map(|d| d["metadata"]["labels"].as_mapping().cloned().unwrap_or_default())
        .filter_map(|(k, _)| k.as_str().map(str::to_string))
        .filter(|k| k.starts_with("rbac.authorization.k8s.io/aggregate-to-"))
        .collect()
}

#[test]
fn by_default_only_the_install_namespace_is_served_and_no_built_in_role_grants_fim() {
    let docs = template(None);
    let args = operator_args(&docs);
    assert!(
        args.contains(&"--workspace-namespaces=kubefim-system".to_string()),
        "{args:?}"
    );
    assert!(
        !args
            .iter()
            .any(|a| a.starts_with("--workspace-namespace-selector")),
        "{args:?}"
    );
    assert!(
        args.contains(&"--agent-node-selector=kubernetes.io/os=linux".to_string()),
        "{args:?}"
    );
    assert!(
        aggregation_labels(&docs).is_empty(),
        "kubefim-admin and kubefim-viewer are not aggregated into admin/edit/view by default"
    );
}

#[test]
fn an_admin_can_allow_more_namespaces_and_opt_in_to_aggregation() {
    let docs = template(Some(&all_toggles()));
    let args = operator_args(&docs);
    assert!(
        args.contains(&"--workspace-namespaces=kubefim-system,team-a,team-b".to_string()),
        "{args:?}"
    );
    assert!(
        args.contains(&"--workspace-namespace-selector=kubefim.dev/monitoring=allowed".to_string()),
        "{args:?}"
    );
    let mut labels = aggregation_labels(&docs);
    labels.sort();
    assert_eq!(
        labels,
        [
            "rbac.authorization.k8s.io/aggregate-to-admin",
            "rbac.authorization.k8s.io/aggregate-to-edit",
            "rbac.authorization.k8s.io/aggregate-to-view"
        ]
    );
}

#[test]
fn the_admission_policy_tests_for_the_node_name_with_has_first() {
    let docs = template(None);
    let policy = docs
        .iter()
        .find(|d| kind(d) == "ValidatingAdmissionPolicy")
        .unwrap();
    let rule = policy["spec"]["validations"][0]["expression"].as_str().unwrap();
    // CEL's && evaluates left to right here: each test guards the index after it.
    let conjuncts: Vec<&str> = rule.split("&&").map(str::trim).collect();
    assert_eq!(conjuncts.len(), 3, "{rule}");
    assert_eq!(conjuncts[0], "has(request.userInfo.extra)", "{rule}");
    assert_eq!(
        conjuncts[1], r#""authentication.kubernetes.io/node-name" in request.userInfo.extra"#,
        "{rule}"
    );
    assert!(
        conjuncts[2].starts_with(
            "object.spec.nodeName == request.userInfo.extra[\"authentication.kubernetes.io/node-name\"][0]"
        ),
        "the index comes last: {rule}"
    );
}

/// Whether the operator's ClusterRole grants anything on Namespaces.
fn operator_reads_namespaces(docs: &[Value]) -> bool {
    docs.iter()
        .filter(|d| kind(d) == "ClusterRole" && d["metadata"]["name"] == "kubefim-operator.kubefim-system")
        .flat_map(|d| d["rules"].as_sequence().cloned().unwrap_or_default())
        .any(|rule| {
            rule["resources"]
                .as_sequence()
                .is_some_and(|r| r.iter().any(|r| r == "namespaces"))
        })
}

#[test]
fn the_operator_reads_namespaces_only_to_match_a_namespace_selector() {
    assert!(
        !operator_reads_namespaces(&template(None)),
        "named namespaces need no Namespace read"
    );
    assert!(operator_reads_namespaces(&template(Some(&all_toggles()))));
}

const CLUSTER_SCOPED: [&str; 4] = [
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
];

fn cluster_scoped_names(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .filter(|d| CLUSTER_SCOPED.contains(&kind(d)))
        .map(|d| format!("{}/{}", kind(d), d["metadata"]["name"].as_str().unwrap()))
        .collect()
}

#[test]
fn two_releases_make_no_cluster_scoped_object_of_the_same_name() {
    let first = cluster_scoped_names(&template_as("kubefim", "team-a", &[]));
    let same_name_elsewhere = template_as("kubefim", "team-b", &[]);
    let other_name = cluster_scoped_names(&template_as("fim", "team-a", &[]));
    assert_eq!(first.len(), 8, "{first:?}");
    assert!(first.contains("ClusterRole/kubefim-agent.team-a"), "{first:?}");
    let second = cluster_scoped_names(&same_name_elsewhere);
    assert!(first.is_disjoint(&second), "{first:?} {second:?}");
    assert!(first.is_disjoint(&other_name), "{first:?} {other_name:?}");
    // Each binding names its own release's role or policy, and the policy its own agent.
    for doc in &same_name_elsewhere {
        match kind(doc) {
            "ClusterRoleBinding" => {
                assert_eq!(doc["roleRef"]["name"], doc["metadata"]["name"]);
                assert_eq!(doc["subjects"][0]["namespace"], "team-b");
            }
            "ValidatingAdmissionPolicyBinding" => {
                assert_eq!(
                    doc["spec"]["policyName"].as_str(),
                    Some("kubefim-agent-own-node.team-b")
                );
            }
            "ValidatingAdmissionPolicy" => {
                let condition = doc["spec"]["matchConditions"][0]["expression"].as_str().unwrap();
                assert!(
                    condition.contains("system:serviceaccount:team-b:kubefim-agent"),
                    "{condition}"
                );
            }
            _ => {}
        }
    }
}

#[test]
fn recursive_read_only_is_refused_with_mount_propagation_and_rendered_without() {
    let output = tool("helm")
        .args(["template", "kubefim"])
        .arg(chart())
        .args(["--set", "agent.hostMount.recursiveReadOnly=IfPossible"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("mountPropagation"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let docs = template_as(
        "kubefim",
        "kubefim-system",
        &[
            "agent.hostMount.recursiveReadOnly=IfPossible",
            "agent.hostMount.mountPropagation=None",
        ],
    );
    let daemonset = docs.iter().find(|d| kind(d) == "DaemonSet").unwrap();
    let host = daemonset["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "host")
        .unwrap();
    assert_eq!(
        (
            host["readOnly"].as_bool(),
            host["mountPropagation"].as_str(),
            host["recursiveReadOnly"].as_str()
        ),
        (Some(true), Some("None"), Some("IfPossible"))
    );
}

#[test]
fn every_dashboard_query_is_promql_that_promtool_accepts() {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(chart().join("dashboards/kubefim.json")).unwrap())
            .unwrap();
    let mut rules = Vec::new();
    for panel in json["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            // Grafana's variables as an "All" selection over a one-hour range substitutes them.
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "5m")
                .replace("$__range", "1h")
                .replace("$namespace", ".*")
                .replace("$workspace", ".*")
                .replace("$node", ".*");
            let record = format!(
                "dashboard:panel{}_{}",
                panel["id"],
                target["refId"].as_str().unwrap()
            );
            rules.push(serde_json::json!({ "record": record, "expr": expr }));
        }
    }
    assert!(rules.len() >= 20, "{rules:#?}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-queries.yaml");
    let groups = serde_json::json!({ "groups": [{ "name": "dashboard", "rules": rules }] });
    std::fs::write(&file, serde_yaml::to_string(&groups).unwrap()).unwrap();
    let mut check = tool("promtool");
    check.args(["check", "rules"]).arg(file);
    run(check);
}
