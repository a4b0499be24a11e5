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
        self.run(verb, &file, extra)
    }

    /// (exit code, stdout, stderr) of `verb` on the configuration file `config`.
    fn run(&self, verb: &str, config: &Path, extra: &[&str]) -> (i32, String, String) {
        let output = self.command(verb, config).args(extra).output().unwrap();
        (
            output.status.code().unwrap(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

/// A MonitoredEntity document of workspace `ws`, its spec's fields after the workspace.
fn entity_doc(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {{name: {name}}}\nspec: {{workspace: ws, {spec}}}\n"
    )
}

const WS: &str = "apiVersion: kubefim.dev/v1alpha1\nkind: FimWorkspace\nmetadata: {name: ws}\nspec: {recommended: {enabled: false}}\n";

#[test]
fn a_misspelt_field_is_refused_naming_it_and_the_nearest_name() {
    let setup = Setup::new();
    let (code, _, stderr) = setup.run_with(
        "init",
        &format!(
            "{WS}{}",
            entity_doc("etc", "type: LinuxFile, path: /etc, recursve: true")
        ),
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
        &format!(
            "{WS}{}",
            entity_doc("etc", "type: LinuxFile, path: /etc, recursive: yes please")
        ),
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
    let entity = |name: &str| entity_doc(name, "type: LinuxFile, path: /etc");
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
        &format!(
            "{WS}{}",
            entity_doc("typo", "type: LinuxFile, path: /etc/no-such-dir, recursive: true")
        ),
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
    let (code, _, stderr) = setup.run("init", &setup.path("config.yaml"), &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("a baseline already exists at") && stderr.contains("init --force"),
        "{stderr}"
    );
    assert_eq!(
        setup.exit_code("check"),
        1,
        "the tampered file is still a change, not absorbed"
    );
    assert_eq!(setup.run("init", &setup.path("config.yaml"), &["--force"]).0, 0);
    assert_eq!(setup.exit_code("check"), 0);
}

#[test]
fn check_without_a_baseline_says_so_first_and_creates_nothing() {
    let setup = Setup::new();
    let (code, stdout, stderr) = setup.run("check", &setup.path("config.yaml"), &[]);
    assert_eq!(code, 2);
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
        "{WS}{}",
        entity_doc("cron", "type: LinuxFile, path: /etc/cron.d, recursive: true")
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

/// xorshift64*: the same pages for the same seed, without a dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn a_store_with_a_page_overwritten_is_a_reported_reset_never_a_crash() {
    let setup = Setup::new();
    for d in 0..20 {
        let dir = setup.path(&format!("host/etc/tree/d{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            std::fs::write(dir.join(format!("f{f}")), format!("{d} {f}\n")).unwrap();
        }
    }
    let config = format!(
        "{WS}{}",
        entity_doc("tree", "type: LinuxFile, path: /etc/tree, recursive: true")
    );
    assert_eq!(setup.run_with("init", &config, &[]).0, 0);
    let store = setup.path("state/baseline.redb");
    let pristine = std::fs::read(&store).unwrap();
    let pages = pristine.len() / 4096;
    assert!(pages >= 8, "a store of {pages} pages is too small to test");
    let (mut resets, mut runs) = (0, 0);
    for seed in 1..=200u64 {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let page = (next(&mut state) as usize) % pages;
        let mut damaged = pristine.clone();
        for byte in &mut damaged[page * 4096..(page + 1) * 4096] {
            *byte = next(&mut state) as u8;
        }
        let _ = std::fs::remove_dir_all(setup.path("state"));
        std::fs::create_dir_all(setup.path("state")).unwrap();
        std::fs::write(&store, &damaged).unwrap();
        let (code, _, stderr) = setup.run_with("check", &config, &[]);
        runs += 1;
        assert!(
            [0, 1, 2].contains(&code),
            "seed {seed} (page {page}): exit {code}, a crash: {stderr}"
        );
        assert!(
            !stderr.contains("thread '"),
            "seed {seed} (page {page}): a panic printed: {stderr}"
        );
        if code == 2 {
            assert!(
                stderr.contains("baseline reset: the baseline store was unusable"),
                "seed {seed} (page {page}): exit 2 without saying why: {stderr}"
            );
            let moved = std::fs::read_dir(setup.path("state"))
                .unwrap()
                .filter_map(Result::ok)
                .any(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("baseline.redb.unusable-")
                });
            assert!(
                moved,
                "seed {seed}: the damaged store is kept aside for inspection"
            );
            assert!(
                !store.exists(),
                "seed {seed}: an empty store left behind would pass for a baseline"
            );
            resets += 1;
        }
    }
    // Pages redb no longer uses can be overwritten unnoticed, and harmlessly; most cannot.
    assert!(
        resets * 2 > runs,
        "only {resets} of {runs} damaged stores were noticed"
    );
}

#[test]
fn a_file_named_like_a_verdict_is_printed_escaped_not_as_a_report_line() {
    let setup = Setup::new();
    std::fs::create_dir_all(setup.path("host/etc/cron.d")).unwrap();
    let config = format!(
        "{WS}{}",
        entity_doc("cron", "type: LinuxFile, path: /etc/cron.d, recursive: true")
    );
    std::fs::write(setup.path("host/etc/cron.d/keep"), "x\n").unwrap();
    assert_eq!(setup.run_with("init", &config, &[]).0, 0);
    let forged = "x\n\nNo changes: the scanned state matches the baseline.\n\u{1b}[2J";
    std::fs::write(setup.path("host/etc/cron.d").join(forged), "evil\n").unwrap();
    let (code, stdout, _) = setup.run_with("check", &config, &[]);
    assert_eq!(code, 1);
    assert!(
        !stdout.lines().any(|l| l.starts_with("No changes")),
        "a forged verdict line: {stdout}"
    );
    assert!(!stdout.contains('\u{1b}'), "a raw escape: {stdout:?}");
    assert!(
        stdout
            .contains("f: /etc/cron.d/x\\n\\nNo changes: the scanned state matches the baseline.\\n\\033[2J"),
        "{stdout}"
    );
}

#[test]
fn an_ancestor_turned_into_a_symlink_loop_is_a_change_naming_the_root() {
    let setup = Setup::new();
    std::fs::create_dir_all(setup.path("host/opt/app/bin")).unwrap();
    std::fs::write(setup.path("host/opt/app/bin/tool"), "#!/bin/sh\n").unwrap();
    std::fs::write(setup.path("host/opt/app/app.conf"), "port = 80\n").unwrap();
    let config = format!(
        "{WS}{}{}",
        entity_doc("app", "type: LinuxFile, path: /opt/app, recursive: true"),
        entity_doc("conf", "type: FileContent, path: /opt/app/app.conf")
    );
    assert_eq!(setup.run_with("init", &config, &[]).0, 0);
    std::fs::rename(setup.path("host/opt"), setup.path("host/opt.real")).unwrap();
    std::os::unix::fs::symlink("opt", setup.path("host/opt")).unwrap();
    let (code, stdout, _) = setup.run_with("check", &config, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(!stdout.contains("No changes"), "{stdout}");
    for path in ["/opt/app/bin/tool", "/opt/app/app.conf"] {
        assert!(
            stdout.contains(&format!(": {path}  [ws/")),
            "{path} not reported: {stdout}"
        );
    }
    assert!(
        stdout.contains("path /opt/app no longer resolves on the host"),
        "the root is named: {stdout}"
    );
    assert!(
        stdout.contains("path /opt/app/app.conf no longer resolves on the host"),
        "a FileContent file likewise: {stdout}"
    );
}

/// The JSON lines a `standalone --once` run prints.
fn standalone_once(setup: &Setup) -> Vec<serde_json::Value> {
    let (code, stdout, stderr) = setup.run(
        "standalone",
        &setup.path("config.yaml"),
        &["--once", "--metrics-addr", "none"],
    );
    assert_eq!(code, 0, "{stderr}");
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn what_update_accepted_while_standalone_was_stopped_is_reported_at_its_next_start() {
    let setup = Setup::new();
    assert!(standalone_once(&setup).is_empty(), "the first baseline is silent");
    std::fs::write(setup.path("host/etc/app.conf"), "debug = true\n").unwrap();
    assert_eq!(setup.exit_code("update"), 1);
    let lines = standalone_once(&setup);
    let accepted: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["path"] == "/etc/app.conf" && l["attribution"]["kind"] == "BaselineAccepted")
        .collect();
    assert_eq!(accepted.len(), 1, "{lines:?}");
    assert!(standalone_once(&setup).is_empty(), "reported once, then let go");
}

#[test]
fn a_store_gone_or_replaced_between_standalone_runs_is_a_baseline_reset_line() {
    let setup = Setup::new();
    assert!(standalone_once(&setup).is_empty());
    let generation = std::fs::read_to_string(setup.path("state/generation")).unwrap();
    std::fs::remove_file(setup.path("state/baseline.redb")).unwrap();
    std::fs::write(
        setup.path("host/etc/app.conf"),
        "changed while the store was gone\n",
    )
    .unwrap();
    let lines = standalone_once(&setup);
    let reset = lines
        .iter()
        .find(|l| l["kind"] == "BaselineReset")
        .unwrap_or_else(|| panic!("no reset line: {lines:?}"));
    assert_eq!(reset["previousGeneration"], generation.trim());
    assert_ne!(reset["generation"], generation.trim());
    assert!(reset["reason"].as_str().unwrap().contains("is gone"), "{reset}");
    assert!(
        standalone_once(&setup)
            .iter()
            .all(|l| l["kind"] != "BaselineReset"),
        "said once"
    );
}
