//! Helpers of the end-to-end suite: a namespace per test with kubefim's CRDs, RBAC and admission
//! policy installed from the chart, Node objects the test creates, and the operator and agents
//! run as local processes against the cluster KUBECONFIG names, each agent with a temporary
//! directory as its host root. Everything a test creates is removed when its `Env` drops.
//!
//! The suite runs through scripts/e2e.sh, one test at a time (the chart's cluster-scoped
//! objects, such as the admission policy, are shared).

#![allow(clippy::expect_used)] // a test environment that cannot be set up stops the test

use std::{
    future::Future,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Node;
use kube::{Api, Client, api::PostParams};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A binary built by `cargo build` (scripts/e2e.sh builds them first).
pub fn binary(name: &str) -> PathBuf {
    let path = repo_root().join("target/debug").join(name);
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

/// The `helm template` arguments that render the chart without the operator and the agent
/// (the suite runs those as local processes).
pub fn chart_template_args(namespace: &str) -> Vec<String> {
    let chart = repo_root().join("charts/kubefim");
    vec![
        "template".into(),
        "kubefim".into(),
        chart.display().to_string(),
        "--namespace".into(),
        namespace.into(),
        "--set".into(),
        "operator.enabled=false".into(),
        "--set".into(),
        "agent.enabled=false".into(),
    ]
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
    pub namespace: String,
    /// The label every Node this test creates carries, for workspace selectors.
    pub node_label: (String, String),
    nodes: Vec<String>,
    processes: Vec<Process>,
    pub dir: tempfile::TempDir,
}

impl Env {
    /// Connects to the cluster KUBECONFIG names, creates the test's namespace and installs the
    /// CRDs, RBAC and admission policy from the chart.
    pub async fn new(test: &str) -> Self {
        let client = Client::try_default()
            .await
            .expect("KUBECONFIG names a reachable cluster (scripts/e2e.sh checks)");
        let namespace = unique_name(&format!("fim-{test}"));
        kubectl_ok(&["create", "namespace", &namespace], None);
        kubectl_ok(
            &[
                "apply",
                "--server-side",
                "-f",
                &repo_root().join("charts/kubefim/crds").display().to_string(),
            ],
            None,
        );
        for crd in [
            "fimworkspaces",
            "monitoredentities",
            "filechanges",
            "fimnodestatuses",
        ] {
            kubectl_ok(
                &[
                    "wait",
                    "--for=condition=Established",
                    "--timeout=60s",
                    &format!("crd/{crd}.kubefim.dev"),
                ],
                None,
            );
        }
        let args = chart_template_args(&namespace);
        let output = Command::new("helm")
            .args(&args)
            .output()
            .expect("helm is on PATH (scripts/install-tools.sh)");
        assert!(
            output.status.success(),
            "helm template: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        kubectl_ok(
            &["apply", "--server-side", "--force-conflicts", "-f", "-"],
            Some(&String::from_utf8_lossy(&output.stdout)),
        );
        let dir = tempfile::tempdir().expect("a temporary directory");
        Self {
            client,
            namespace: namespace.clone(),
            node_label: ("kubefim-e2e".into(), namespace),
            nodes: Vec::new(),
            processes: Vec::new(),
            dir,
        }
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

    /// Starts the operator for this namespace, with short status and retention periods.
    pub fn start_operator(&mut self) {
        let port = free_port();
        let child = Command::new(binary("kubefim-operator"))
            .args([
                "run",
                "--namespace",
                &self.namespace,
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
            ])
            .stdout(Stdio::null())
            .stderr(log_file(self.dir.path(), "operator"))
            .spawn()
            .expect("the operator starts");
        self.processes.push(Process(child));
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

    /// Starts an agent for `node` (with `kubeconfig` when given, else the suite's).
    pub fn start_agent(&mut self, node: &str, kubeconfig: Option<&Path>) -> usize {
        let host = self.host_root(node);
        let state = self.dir.path().join("state").join(node);
        let mut command = Command::new(binary("kubefim-agent"));
        command
            .args([
                "--log-format",
                "json",
                "run",
                "--node-name",
                node,
                "--namespace",
                &self.namespace,
            ])
            .arg("--host-root")
            .arg(&host)
            .arg("--state-dir")
            .arg(&state)
            .args([
                "--metrics-addr",
                "none",
                "--heartbeat-seconds",
                "2",
                "--request-timeout-seconds",
                "2",
            ])
            .stdout(Stdio::null())
            .stderr(log_file(self.dir.path(), &format!("agent-{node}")));
        if let Some(kubeconfig) = kubeconfig {
            command.env("KUBECONFIG", kubeconfig);
        }
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
        kubectl(&["apply", "-n", &self.namespace, "-f", "-"], Some(yaml))
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

fn log_file(dir: &Path, name: &str) -> Stdio {
    let path = dir.join(format!("{name}.log"));
    std::fs::File::create(&path)
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Drop for Env {
    fn drop(&mut self) {
        self.processes.clear();
        for node in &self.nodes {
            let _ = kubectl(&["delete", "node", node, "--wait=false"], None);
        }
        let _ = kubectl(&["delete", "namespace", &self.namespace, "--wait=false"], None);
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
    fn the_chart_is_rendered_without_operator_and_agent() {
        let args = chart_template_args("ns1");
        assert_eq!(&args[..2], ["template", "kubefim"]);
        assert!(args.windows(2).any(|w| w == ["--namespace", "ns1"]));
        assert!(
            args.contains(&"operator.enabled=false".to_string())
                && args.contains(&"agent.enabled=false".to_string())
        );
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
