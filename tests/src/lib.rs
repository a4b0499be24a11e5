//! Helpers of the end-to-end suite. scripts/e2e.sh installs the chart once per run (CRDs, RBAC,
//! admission policy; no operator or agent) into an install namespace and removes it at the end.
//! Each test gets a namespace of its own, Node objects it creates, and the operator and agents
//! run as local processes under their own service accounts (impersonated in a kubeconfig of
//! their own, with the node name in the agent's extras, as a bound token carries it), so RBAC
//! and admission gaps show. Each agent has a temporary directory as its host root. Everything a
//! test creates is removed when its `Env` drops.

#![allow(clippy::expect_used)] // a test environment that cannot be set up stops the test

pub mod scenario;

use std::{
    collections::BTreeMap,
    future::Future,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Node;
use kube::{Api, Client, api::PostParams};
use kubefim_crds::keys;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A binary built by `cargo build` (scripts/e2e.sh builds them first), of the profile
/// KUBEFIM_E2E_PROFILE names (default debug; the benchmarks use release).
pub fn binary(name: &str) -> PathBuf {
    let profile = std::env::var("KUBEFIM_E2E_PROFILE").unwrap_or_else(|_| "debug".into());
    let path = repo_root().join("target").join(profile).join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/e2e.sh, which builds it",
        path.display()
    );
    path
}

/// A name unique to this run, valid as a namespace or node name (RFC 1123 label).
pub fn unique_name(prefix: &str) -> String {
    let nanos = jiff::Timestamp::now().as_nanosecond();
    let suffix = format!("{:x}", (nanos as u64) ^ u64::from(std::process::id()));
    let prefix: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut name = format!(
        "{}-{}",
        prefix.trim_matches('-'),
        &suffix[suffix.len().saturating_sub(8)..]
    );
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

/// Whether `name` is a valid RFC 1123 label.
pub fn is_rfc1123_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// The namespace scripts/e2e.sh installed the chart into (RBAC subjects, node ConfigMaps, the
/// operator's Lease).
pub fn install_namespace() -> String {
    std::env::var("KUBEFIM_E2E_INSTALL_NAMESPACE").unwrap_or_else(|_| "kubefim-e2e".into())
}

/// The user name of a service account.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// Who a process acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl Identity {
    /// A service account, with the groups its token carries.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            user: service_account_user(namespace, name),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
            extra: BTreeMap::new(),
        }
    }

    /// An agent's service account on `node`: its bound token carries the node's name.
    pub fn agent(namespace: &str, node: &str) -> Self {
        let mut identity = Self::service_account(namespace, "kubefim-agent");
        identity
            .extra
            .insert("authentication.kubernetes.io/node-name".into(), vec![node.into()]);
        identity
    }

    /// A person.
    pub fn user(name: &str) -> Self {
        Self {
            user: name.into(),
            groups: vec!["system:authenticated".into()],
            extra: BTreeMap::new(),
        }
    }
}

/// `kubeconfig` (YAML) with every user impersonating `identity`.
pub fn impersonating_kubeconfig(kubeconfig: &str, identity: &Identity) -> String {
    let mut config: serde_yaml::Value =
        serde_yaml::from_str(kubeconfig).expect("the suite's kubeconfig is YAML");
    let users = config
        .get_mut("users")
        .and_then(serde_yaml::Value::as_sequence_mut)
        .expect("the kubeconfig has users");
    for user in users {
        let Some(fields) = user.get_mut("user").and_then(serde_yaml::Value::as_mapping_mut) else {
            continue;
        };
        fields.insert("as".into(), identity.user.clone().into());
        fields.insert(
            "as-groups".into(),
            serde_yaml::to_value(&identity.groups).expect("strings serialize"),
        );
        if !identity.extra.is_empty() {
            fields.insert(
                "as-user-extra".into(),
                serde_yaml::to_value(&identity.extra).expect("strings serialize"),
            );
        }
    }
    serde_yaml::to_string(&config).expect("a YAML value serializes")
}

/// A copy of a kubeconfig whose clusters point at a closed port: an API server outage.
pub fn unreachable_kubeconfig(kubeconfig: &str) -> String {
    kubeconfig
        .lines()
        .map(|line| match line.split_once("server:") {
            Some((indent, _)) => format!("{indent}server: https://127.0.0.1:1"),
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The delays between polls: 100 ms doubling up to 1 s.
pub fn poll_delays() -> impl Iterator<Item = Duration> {
    (0..)
        .map(|i: u32| Duration::from_millis(100u64.saturating_mul(1 << i.min(4))).min(Duration::from_secs(1)))
}

/// Polls `check` until it yields a value or `timeout` passes; the panic names `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    for delay in poll_delays() {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(delay).await;
    }
    unreachable!("poll_delays is endless")
}

/// Runs kubectl (with the suite's KUBECONFIG) and returns its output.
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new("kubectl")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl is on PATH");
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .expect("kubectl reads its input");
    }
    child.wait_with_output().expect("kubectl runs")
}

/// kubectl that must succeed.
pub fn kubectl_ok(args: &[&str], stdin: Option<&str>) -> String {
    let output = kubectl(args, stdin);
    assert!(
        output.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A process the test started; killed when dropped.
#[derive(Debug)]
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One test's environment.
pub struct Env {
    pub client: Client,
    /// The test's own namespace (its workspaces, entities, FileChanges).
    pub namespace: String,
    /// Where the chart is installed: node ConfigMaps and the Lease live here.
    pub install: String,
    /// The label every Node this test creates carries, for workspace selectors.
    pub node_label: (String, String),
    nodes: Vec<String>,
    namespaces: Vec<String>,
    processes: Vec<Process>,
    pub dir: tempfile::TempDir,
}

/// The suite's kubeconfig (KUBECONFIG, as scripts/e2e.sh sets it).
pub fn suite_kubeconfig() -> String {
    let path = std::env::var("KUBECONFIG").expect("scripts/e2e.sh sets KUBECONFIG");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read KUBECONFIG {path}: {e}"))
}

/// The label on every namespace and Node the suite creates, valued with the test's namespace:
/// scripts/e2e.sh removes what a killed test left behind by this label and by nothing else.
pub const SUITE_LABEL: &str = "kubefim-e2e";

fn create_suite_namespace(name: &str, test_namespace: &str) {
    kubectl_ok(&["create", "namespace", name], None);
    kubectl_ok(
        &[
            "label",
            "namespace",
            name,
            &format!("{SUITE_LABEL}={test_namespace}"),
        ],
        None,
    );
}

impl Env {
    /// Connects to the cluster KUBECONFIG names and creates the test's namespace. The chart
    /// must have been installed by scripts/e2e.sh.
    pub async fn new(test: &str) -> Self {
        let client = Client::try_default()
            .await
            .expect("KUBECONFIG names a reachable cluster (scripts/e2e.sh checks)");
        let install = install_namespace();
        assert!(
            kubectl(&["get", "rolebinding", "kubefim-agent", "-n", &install], None)
                .status
                .success(),
            "the chart is not installed in namespace {install}: run the suite through scripts/e2e.sh"
        );
        let namespace = unique_name(&format!("fim-{test}"));
        create_suite_namespace(&namespace, &namespace);
        let dir = tempfile::tempdir().expect("a temporary directory");
        Self {
            client,
            namespace: namespace.clone(),
            install,
            node_label: (SUITE_LABEL.into(), namespace.clone()),
            nodes: Vec::new(),
            namespaces: vec![namespace],
            processes: Vec::new(),
            dir,
        }
    }

    /// Another namespace for this test, removed with it.
    pub fn create_namespace(&mut self, prefix: &str, labels: &[(&str, &str)]) -> String {
        let name = unique_name(prefix);
        create_suite_namespace(&name, &self.namespace);
        for (key, value) in labels {
            kubectl_ok(&["label", "namespace", &name, &format!("{key}={value}")], None);
        }
        self.namespaces.push(name.clone());
        name
    }

    /// Creates a Node object (no kubelet behind it) carrying the test's label.
    pub async fn create_node(&mut self, prefix: &str) -> String {
        let name = unique_name(prefix);
        let node: Node = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {self.node_label.0.clone(): self.node_label.1.clone(), "kubernetes.io/os": "linux"}},
        }))
        .expect("a valid Node");
        Api::<Node>::all(self.client.clone())
            .create(&PostParams::default(), &node)
            .await
            .expect("the test may create Nodes");
        self.nodes.push(name.clone());
        name
    }

    /// Deletes the operator's Lease in the install namespace, if there is one.
    fn delete_operator_lease(&self) {
        let _ = kubectl(
            &[
                "delete",
                "lease",
                keys::OPERATOR_LEASE,
                "-n",
                &self.install,
                "--ignore-not-found",
            ],
            None,
        );
    }

    /// Starts the agent of `node` with a kubeconfig naming its own identity but a server that
    /// does not answer: it detects and queues, and reports nothing. Returns its process index.
    pub fn start_offline_agent(&mut self, node: &str) -> usize {
        let own = self.kubeconfig_as(
            &format!("agent-{node}-offline.kubeconfig"),
            &Identity::agent(&self.install, node),
        );
        let unreachable = self.dir.path().join(format!("{node}-unreachable.kubeconfig"));
        let text = std::fs::read_to_string(&own).expect("the kubeconfig just written");
        std::fs::write(&unreachable, unreachable_kubeconfig(&text)).expect("the test directory is writable");
        self.start_agent(node, Some(&unreachable), &[])
    }

    /// A kubeconfig of the suite's cluster acting as `identity`, written in the test's directory.
    pub fn kubeconfig_as(&self, file: &str, identity: &Identity) -> PathBuf {
        let path = self.dir.path().join(file);
        std::fs::write(&path, impersonating_kubeconfig(&suite_kubeconfig(), identity))
            .expect("the test directory is writable");
        path
    }

    /// Starts the operator under its own service account, serving this test's namespace (and
    /// what `args` add), with short status and retention periods.
    pub fn start_operator(&mut self, args: &[&str]) {
        // The previous test's operator may have died holding the Lease: start afresh.
        self.delete_operator_lease();
        let kubeconfig = self.kubeconfig_as(
            "operator.kubeconfig",
            &Identity::service_account(&self.install, "kubefim-operator"),
        );
        let port = free_port();
        let allowed = format!("--workspace-namespaces={},{}", self.install, self.namespace);
        let mut command = Command::new(binary("kubefim-operator"));
        command
            .args([
                "run",
                "--namespace",
                &self.install,
                "--identity",
                &unique_name("e2e-operator"),
            ])
            .args([
                "--metrics-addr",
                &format!("127.0.0.1:{port}"),
                "--log-format",
                "text",
            ])
            .args([
                "--status-interval-seconds",
                "2",
                "--retention-interval-seconds",
                "2",
            ]);
        if !args.iter().any(|a| a.starts_with("--workspace-namespaces")) {
            command.arg(&allowed);
        }
        command
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .stdout(Stdio::null())
            .stderr(log_file(self.dir.path(), "operator"));
        self.processes
            .push(Process(command.spawn().expect("the operator starts")));
    }

    /// A host root for an agent, with /srv/app holding one file.
    pub fn host_root(&self, node: &str) -> PathBuf {
        let root = self.dir.path().join("hosts").join(node);
        std::fs::create_dir_all(root.join("srv/app")).expect("host root");
        std::fs::create_dir_all(root.join("etc")).expect("host root");
        std::fs::write(root.join("srv/app/config.yaml"), "replicas: 1\n").expect("seed file");
        std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").expect("seed file");
        root
    }

    /// Starts an agent for `node` under the agent's service account (with `kubeconfig` instead
    /// when given), with `args` added; returns its index for [`Env::stop`].
    pub fn start_agent(&mut self, node: &str, kubeconfig: Option<&Path>, args: &[&str]) -> usize {
        self.start_agent_under(node, kubeconfig, args, &[])
    }

    /// As [`Env::start_agent`], run through `prefix` (a command that ends by exec'ing its
    /// arguments, such as one that first moves itself into a cgroup).
    pub fn start_agent_under(
        &mut self,
        node: &str,
        kubeconfig: Option<&Path>,
        args: &[&str],
        prefix: &[&str],
    ) -> usize {
        let host = self.host_root(node);
        let state = self.dir.path().join("state").join(node);
        let own = self.kubeconfig_as(
            &format!("agent-{node}.kubeconfig"),
            &Identity::agent(&self.install, node),
        );
        let mut command = match prefix.split_first() {
            Some((first, rest)) => {
                let mut command = Command::new(first);
                command.args(rest).arg(binary("kubefim-agent"));
                command
            }
            None => Command::new(binary("kubefim-agent")),
        };
        command
            .args([
                "--log-format",
                "json",
                "run",
                "--node-name",
                node,
                "--namespace",
                &self.install,
            ])
            .arg("--host-root")
            .arg(&host)
            .arg("--state-dir")
            .arg(&state)
            .args(["--request-timeout-seconds", "2"]);
        if !args.iter().any(|a| a.starts_with("--heartbeat-seconds")) {
            command.args(["--heartbeat-seconds", "2"]);
        }
        if !args.iter().any(|a| a.starts_with("--metrics-addr")) {
            command.args(["--metrics-addr", "none"]);
        }
        command
            .args(args)
            .env("KUBECONFIG", kubeconfig.unwrap_or(&own))
            .stdout(output_file(self.dir.path(), &format!("agent-{node}.jsonl")))
            .stderr(log_file(self.dir.path(), &format!("agent-{node}")));
        self.processes
            .push(Process(command.spawn().expect("the agent starts")));
        self.processes.len() - 1
    }

    /// Stops a process started by this Env.
    pub fn stop(&mut self, index: usize) {
        let process = &mut self.processes[index].0;
        let _ = process.kill();
        let _ = process.wait();
    }

    /// Applies YAML in the test's namespace.
    pub fn apply(&self, yaml: &str) -> Output {
        self.apply_in(&self.namespace, yaml)
    }

    /// Applies YAML in `namespace`.
    pub fn apply_in(&self, namespace: &str, yaml: &str) -> Output {
        kubectl(&["apply", "-n", namespace, "-f", "-"], Some(yaml))
    }

    /// The JSON lines the agent of `node` printed: one FileChange spec per change.
    pub fn agent_lines(&self, node: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join(format!("agent-{node}.jsonl")))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The agent's log of `node`, for assertions and failure messages.
    pub fn agent_log(&self, node: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("agent-{node}.log"))).unwrap_or_default()
    }
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("namespace", &self.namespace)
            .field("nodes", &self.nodes)
            .finish()
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn log_file(dir: &Path, name: &str) -> Stdio {
    output_file(dir, &format!("{name}.log"))
}

fn output_file(dir: &Path, name: &str) -> Stdio {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

impl Drop for Env {
    fn drop(&mut self) {
        self.processes.clear();
        self.delete_operator_lease();
        for node in &self.nodes {
            let _ = kubectl(&["delete", "node", node, "--wait=false"], None);
        }
        for namespace in &self.namespaces {
            let _ = kubectl(
                &[
                    "delete",
                    "namespace",
                    namespace,
                    "--wait=false",
                    "--ignore-not-found",
                ],
                None,
            );
        }
        // The processes' logs outlive the test when asked (KUBEFIM_E2E_LOGS=<dir>).
        if let Some(keep) = std::env::var_os("KUBEFIM_E2E_LOGS") {
            let target = PathBuf::from(keep).join(&self.namespace);
            if std::fs::create_dir_all(&target).is_ok()
                && let Ok(entries) = std::fs::read_dir(self.dir.path())
            {
                for entry in entries.flatten() {
                    if entry.path().extension().is_some_and(|e| e == "log") {
                        let _ = std::fs::copy(entry.path(), target.join(entry.file_name()));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn unique_names_are_valid_labels_and_differ() {
        let a = unique_name("fim-Some_Test");
        std::thread::sleep(Duration::from_millis(2));
        let b = unique_name("fim-Some_Test");
        assert!(is_rfc1123_label(&a), "{a}");
        assert_ne!(a, b);
        assert!(is_rfc1123_label(&unique_name(&"x".repeat(100))));
    }

    #[test]
    fn rfc1123_labels() {
        for (name, valid) in [
            ("fim-a1", true),
            ("Fim", false),
            ("-a", false),
            ("a-", false),
            ("", false),
            ("a.b", false),
        ] {
            assert_eq!(is_rfc1123_label(name), valid, "{name}");
        }
    }

    #[test]
    fn an_impersonating_kubeconfig_carries_the_user_groups_and_node_name() {
        let config = "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters: []\ncontexts: []\nusers:\n- name: admin\n  user:\n    client-certificate-data: abc\n";
        let text = impersonating_kubeconfig(config, &Identity::agent("kubefim-e2e", "node-a"));
        let parsed: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let user = &parsed["users"][0]["user"];
        assert_eq!(user["client-certificate-data"], "abc", "the credentials stay");
        assert_eq!(user["as"], "system:serviceaccount:kubefim-e2e:kubefim-agent");
        assert_eq!(user["as-groups"][1], "system:serviceaccounts:kubefim-e2e");
        assert_eq!(
            user["as-user-extra"]["authentication.kubernetes.io/node-name"][0],
            "node-a"
        );
        let person = impersonating_kubeconfig(config, &Identity::user("alice"));
        assert!(!person.contains("as-user-extra"), "{person}");
    }

    #[test]
    fn an_unreachable_kubeconfig_points_every_cluster_at_a_closed_port() {
        let config = "clusters:\n- cluster:\n    certificate-authority-data: abc\n    server: https://10.0.0.1:6443\n  name: a\n- cluster:\n    server: https://b:443\n  name: b\n";
        let rewritten = unreachable_kubeconfig(config);
        assert_eq!(rewritten.matches("server: https://127.0.0.1:1").count(), 2);
        assert!(rewritten.contains("certificate-authority-data: abc") && !rewritten.contains("10.0.0.1"));
    }

    #[test]
    fn polling_backs_off_to_one_second() {
        let delays: Vec<Duration> = poll_delays().take(7).collect();
        assert_eq!(delays[0], Duration::from_millis(100));
        assert_eq!(delays[1], Duration::from_millis(200));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(1)));
        assert_eq!(delays[6], Duration::from_secs(1));
    }

    #[tokio::test]
    async fn eventually_returns_the_first_value() {
        let mut calls = 0;
        let value = eventually(Duration::from_secs(5), "the third call", || {
            calls += 1;
            let done = calls >= 3;
            async move { done.then_some(42) }
        })
        .await;
        assert_eq!((value, calls), (42, 3));
    }
}
