//! The agent binary as a user runs it: one-shot exit codes, standalone JSON lines, a real
//! metrics endpoint scraped over HTTP, and a clean stop on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const AGENT: &str = env!("CARGO_BIN_EXE_kubefim-agent");

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("host/etc")).unwrap();
        std::fs::write(dir.path().join("host/etc/app.conf"), "debug = false\n").unwrap();
        std::fs::write(
            dir.path().join("config.yaml"),
            "apiVersion: kubefim.dev/v1alpha1\nkind: FimWorkspace\nmetadata: {name: ws}\nspec: {recommended: {enabled: false}}\n---\napiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {name: conf}\nspec: {workspace: ws, type: FileContent, path: /etc/app.conf}\n",
        )
        .unwrap();
        Self { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn command(&self, verb: &str, config: &Path) -> Command {
        let mut command = Command::new(AGENT);
        command
            .args([verb, "--node-name", "node-a", "--config"])
            .arg(config)
            .arg("--host-root")
            .arg(self.path("host"))
            .arg("--state-dir")
            .arg(self.path("state"));
        command
    }

    fn exit_code(&self, verb: &str) -> i32 {
        self.command(verb, &self.path("config.yaml"))
            .output()
            .unwrap()
            .status
            .code()
            .unwrap()
    }
}

#[test]
fn check_exits_0_when_clean_1_on_changes_2_on_errors() {
    let setup = Setup::new();
    assert_eq!(
        setup.exit_code("check"),
        2,
        "no baseline yet is an error, not a clean bill of health"
    );
    assert_eq!(setup.exit_code("init"), 0);
    assert_eq!(setup.exit_code("check"), 0);
    std::fs::write(setup.path("host/etc/app.conf"), "debug = true\n").unwrap();
    assert_eq!(setup.exit_code("check"), 1);
    assert_eq!(setup.exit_code("update"), 1);
    assert_eq!(setup.exit_code("check"), 0);
    std::fs::write(setup.path("bad.yaml"), "apiVersion: kubefim.dev/v1alpha1\nkind: FimWorkspace\nmetadata: {name: bad}\nspec: {scan: {interval: 5s}}\n").unwrap();
    let output = setup.command("check", &setup.path("bad.yaml")).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("scan.interval 5s is not allowed"), "{stderr}");
}

#[test]
fn check_report_shows_the_diff() {
    let setup = Setup::new();
    assert_eq!(setup.exit_code("init"), 0);
    std::fs::write(setup.path("host/etc/app.conf"), "debug = true\n").unwrap();
    let report = String::from_utf8(
        setup
            .command("check", &setup.path("config.yaml"))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(report.contains("Changed entries:\t\t1"), "{report}");
    assert!(report.contains("-debug = false\n+debug = true\n"), "{report}");
}

/// The value of the series `name` whose labels include `labels` and node="node-a".
fn series(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, label_text) = series.split_once('{').unwrap_or((series, ""));
            let wanted = labels
                .iter()
                .chain(&[("node", "node-a")])
                .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")));
            (series_name == name && wanted)
                .then(|| value.parse().ok())
                .flatten()
        })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn scrape(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

#[test]
fn standalone_prints_json_lines_serves_metrics_and_stops_on_sigterm() {
    let setup = Setup::new();
    assert_eq!(setup.exit_code("init"), 0);
    std::fs::write(setup.path("host/etc/app.conf"), "debug = true\n").unwrap();
    let port = free_port();
    let mut child = setup
        .command("standalone", &setup.path("config.yaml"))
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    let change: kubefim_crds::FileChangeSpec = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (change.path.as_str(), change.node_name.as_str()),
        ("/etc/app.conf", "node-a")
    );
    assert!(change.content_diff.unwrap().contains("+debug = true"));

    // The scan that printed the line has recorded its metrics by the time it is scraped again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let text = scrape(port);
        if text.contains("kubefim_last_scan_timestamp_seconds") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for (name, labels, value) in [
        (
            "kubefim_changes_total",
            &[
                ("category", "Modified"),
                ("entity", "conf"),
                ("type", "FileContent"),
                ("workspace", "ws"),
            ][..],
            1.0,
        ),
        (
            "kubefim_files_monitored",
            &[("entity", "conf"), ("workspace", "ws")],
            1.0,
        ),
        (
            "kubefim_entity_error",
            &[("entity", "conf"), ("workspace", "ws")],
            0.0,
        ),
        ("kubefim_scanned_files_total", &[], 1.0),
    ] {
        assert_eq!(
            series(&metrics, name, labels),
            Some(value),
            "{name} {labels:?} in\n{metrics}"
        );
    }
    assert!(!metrics.contains("/etc/app.conf"), "no label may hold a path");

    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143), "stopped by SIGTERM: 128 + 15");
}

#[test]
fn every_command_has_help() {
    for verb in [&[][..], &["standalone"], &["init"], &["check"], &["update"]] {
        let output = Command::new(AGENT).args(verb).arg("--help").output().unwrap();
        assert!(output.status.success());
        assert!(String::from_utf8_lossy(&output.stdout).contains("Usage:"));
    }
}

impl Setup {
    /// (exit code, stdout, stderr) of `verb` on the YAML `config`.
    fn run_with(&self, verb: &str, config: &str, extra: &[&str]) -> (i32, String, String) {
        let file = self.path("given.yaml");
        std::fs::write(&file, config).unwrap();
        let output = self.command(verb, &file).args(extra).output().unwrap();
        (
            output.status.code().unwrap(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

const WS: &str = "apiVersion: kubefim.dev/v1alpha1\nkind: FimWorkspace\nmetadata: {name: ws}\nspec: {recommended: {enabled: false}}\n";

#[test]
fn a_misspelt_field_is_refused_naming_it_and_the_nearest_name() {
    let setup = Setup::new();
    let (code, _, stderr) = setup.run_with(
        "init",
        &format!("{WS}---\napiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {{name: etc}}\nspec: {{workspace: ws, type: LinuxFile, path: /etc, recursve: true}}\n"),
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains(
            "document 2 (MonitoredEntity etc): unknown field spec.recursve; did you mean recursive?"
        ),
        "{stderr}"
    );
    assert!(
        !setup.path("state/baseline.redb").exists(),
        "a refused configuration writes nothing"
    );
    let (code, _, stderr) = setup.run_with(
        "init",
        "apiVersion: kubefim.dev/v1alpha1\nkind: FimWorkspace\nmetadata: {name: ws}\nspec: {scan: {intervall: 5m}}\n",
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("unknown field spec.scan.intervall; did you mean interval?"),
        "{stderr}"
    );
}

#[test]
fn a_type_error_names_the_field_path() {
    let setup = Setup::new();
    let (code, _, stderr) = setup.run_with(
        "check",
        &format!("{WS}---\napiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {{name: etc}}\nspec: {{workspace: ws, type: LinuxFile, path: /etc, recursive: yes please}}\n"),
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("spec.recursive: invalid type: string \"yes please\", expected a boolean"),
        "{stderr}"
    );
}

#[test]
fn duplicate_names_and_paths_are_refused_as_the_operator_refuses_them() {
    let setup = Setup::new();
    let entity = |name: &str| {
        format!(
            "---\napiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {{name: {name}}}\nspec: {{workspace: ws, type: LinuxFile, path: /etc}}\n"
        )
    };
    let (code, _, stderr) = setup.run_with("init", &format!("{WS}{}{}", entity("a"), entity("a")), &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("MonitoredEntity \"a\" appears twice in the file"),
        "{stderr}"
    );
    let (code, _, stderr) = setup.run_with("init", &format!("{WS}{}{}", entity("a"), entity("b")), &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("MonitoredEntity \"b\": entity \"a\" of the same workspace already monitors LinuxFile \"/etc\"; delete one of the two"),
        "{stderr}"
    );
}

#[test]
fn an_entity_matching_nothing_and_an_empty_workspace_fail_the_run_and_say_why() {
    let setup = Setup::new();
    let (code, _, stderr) = setup.run_with(
        "init",
        &format!("{WS}---\napiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {{name: typo}}\nspec: {{workspace: ws, type: LinuxFile, path: /etc/no-such-dir, recursive: true}}\n"),
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("problem: entity ws/typo matched nothing on this host: check its path"),
        "{stderr}"
    );
    let (code, _, stderr) = setup.run_with("init", WS, &["--force"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(
            "problem: workspace ws monitors nothing: it has no MonitoredEntity and no recommended item"
        ),
        "{stderr}"
    );
}

#[test]
fn init_refuses_to_replace_a_baseline_without_force() {
    let setup = Setup::new();
    assert_eq!(setup.exit_code("init"), 0);
    std::fs::write(setup.path("host/etc/app.conf"), "tampered\n").unwrap();
    let output = setup
        .command("init", &setup.path("config.yaml"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("a baseline already exists at") && stderr.contains("init --force"),
        "{stderr}"
    );
    assert_eq!(
        setup.exit_code("check"),
        1,
        "the tampered file is still a change, not absorbed"
    );
    let output = setup
        .command("init", &setup.path("config.yaml"))
        .arg("--force")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(setup.exit_code("check"), 0);
}

#[test]
fn check_without_a_baseline_says_so_first_and_creates_nothing() {
    let setup = Setup::new();
    let output = setup
        .command("check", &setup.path("config.yaml"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stdout.is_empty(), "a report before the error: {stdout}");
    assert!(stderr.contains("error: there is no baseline in"), "{stderr}");
    assert!(
        !setup.path("state").exists(),
        "check created {:?}",
        setup.path("state")
    );
}

#[test]
fn update_lists_every_change_it_accepts_and_says_nothing_else_explained_them() {
    let setup = Setup::new();
    std::fs::create_dir_all(setup.path("host/etc/cron.d")).unwrap();
    let config = format!(
        "{WS}---\napiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {{name: cron}}\nspec: {{workspace: ws, type: LinuxFile, path: /etc/cron.d, recursive: true}}\n"
    );
    std::fs::write(
        setup.path("host/etc/cron.d/logrotate"),
        "0 0 * * * root logrotate\n",
    )
    .unwrap();
    assert_eq!(setup.run_with("init", &config, &[]).0, 0);
    std::fs::write(
        setup.path("host/etc/cron.d/backdoor"),
        "* * * * * root nc -e /bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        setup.path("host/etc/cron.d/logrotate"),
        "0 1 * * * root logrotate\n",
    )
    .unwrap();
    let (code, stdout, _) = setup.run_with("update", &config, &[]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("3 changes found and accepted as the new baseline: 3 explained by nothing but this update (review each below)"),
        "{stdout}"
    );
    assert!(stdout.contains("f: /etc/cron.d/backdoor"), "{stdout}");
    assert!(stdout.contains("f: /etc/cron.d/logrotate"), "{stdout}");
    assert!(
        stdout.contains("d: /etc/cron.d "),
        "the directory whose listing changed: {stdout}"
    );
}

#[test]
fn errors_say_each_cause_once_without_colour_when_not_a_terminal() {
    let setup = Setup::new();
    let output = Command::new(AGENT)
        .args(["check", "--config"])
        .arg(setup.path("missing.yaml"))
        .arg("--host-root")
        .arg(setup.path("host"))
        .arg("--state-dir")
        .arg(setup.path("state"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(!stderr.contains('\u{1b}'), "colour codes on a pipe: {stderr:?}");
    assert_eq!(stderr.matches("No such file or directory").count(), 1, "{stderr}");
    assert!(stderr.contains("missing.yaml"), "{stderr}");
}
