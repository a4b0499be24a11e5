//! The CEL admission rules, evaluated client-side with kube's `cel` feature (the same
//! interpreter family the API server runs; docs/design.md, "Verified facts" records where they were checked against a
//! real server). Each refusal must be a rule that evaluated to false with the expected message,
//! never a rule that failed to compile: a broken rule would otherwise look like a refusal.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

use kube::core::cel::ErrorKind;
use kubefim_crds::{FimWorkspace, MonitoredEntity};
use serde_json::json;

fn entity(spec: serde_json::Value) -> MonitoredEntity {
    let mut spec = spec;
    spec.as_object_mut()
        .unwrap()
        .entry("workspace")
        .or_insert(json!("prod"));
    serde_json::from_value(json!({
        "apiVersion": "kubefim.dev/v1alpha1",
        "kind": "MonitoredEntity",
        "metadata": {"name": "e", "namespace": "fim"},
        "spec": spec,
    }))
    .unwrap()
}

fn workspace(spec: serde_json::Value) -> FimWorkspace {
    serde_json::from_value(json!({
        "apiVersion": "kubefim.dev/v1alpha1",
        "kind": "FimWorkspace",
        "metadata": {"name": "prod", "namespace": "fim"},
        "spec": spec,
    }))
    .unwrap()
}

/// Ok(()) when admitted; Err(messages) when refused. Panics if a rule could not be evaluated.
fn verdict(result: Result<(), kube::core::cel::ValidationErrors>) -> Result<(), Vec<String>> {
    match result {
        Ok(()) => Ok(()),
        Err(errors) => {
            let errors = errors.into_vec();
            for error in &errors {
                assert!(
                    matches!(error.kind, ErrorKind::ValidationFailure),
                    "rule {:?} did not evaluate: {:?} {}",
                    error.rule,
                    error.kind,
                    error.message
                );
            }
            Err(errors.into_iter().map(|e| e.message).collect())
        }
    }
}

/// (spec, None when admitted or Some(fragment of the refusal message)).
fn entity_cases() -> Vec<(serde_json::Value, Option<&'static str>)> {
    vec![
        // Rules from the reference document.
        (json!({"type": "LinuxFile", "path": "/etc/*.conf"}), None),
        (
            json!({"type": "LinuxFile", "path": "/etc/*/passwd"}),
            Some("wildcard before its last segment"),
        ),
        (
            json!({"type": "WindowsFile", "path": "c:\\*.*"}),
            Some("too general"),
        ),
        (
            json!({"type": "WindowsFile", "path": "C:\\*"}),
            Some("too general"),
        ),
        (json!({"type": "LinuxFile", "path": "/"}), Some("too general")),
        (json!({"type": "LinuxFile", "path": "$HOME/.ssh"}), None),
        (
            json!({"type": "LinuxFile", "path": "${HOME}/.ssh/authorized_keys"}),
            None,
        ),
        // Broad paths are accepted when asked for.
        (
            json!({"type": "LinuxFile", "path": "/", "allowBroad": true}),
            None,
        ),
        (
            json!({"type": "WindowsFile", "path": "C:\\*.*", "allowBroad": true}),
            None,
        ),
        (json!({"type": "LinuxFile", "path": "/*"}), Some("too general")),
        (
            json!({"type": "LinuxFile", "path": "/usr", "recursive": true}),
            Some("too general"),
        ),
        (json!({"type": "LinuxFile", "path": "/usr"}), None),
        (
            json!({"type": "LinuxFile", "path": "/usr/bin", "recursive": true}),
            None,
        ),
        // Absolute paths per type.
        (
            json!({"type": "LinuxFile", "path": "etc/passwd"}),
            Some("is not absolute"),
        ),
        (
            json!({"type": "FileContent", "path": "relative.conf"}),
            Some("is not absolute"),
        ),
        (json!({"type": "FileContent", "path": "/etc/hosts"}), None),
        (
            json!({"type": "WindowsFile", "path": "Windows\\win.ini"}),
            Some("is not absolute"),
        ),
        (
            json!({"type": "WindowsFile", "path": "C:\\Windows\\win.ini"}),
            None,
        ),
        (
            json!({"type": "WindowsFile", "path": "%windir%\\system.ini"}),
            None,
        ),
        (
            json!({"type": "WindowsFile", "path": "D:\\ContosoWebApp\\*"}),
            None,
        ),
        (
            json!({"type": "WindowsFile", "path": "C:\\Windows\\*\\win.ini"}),
            Some("wildcard before its last segment"),
        ),
        (
            json!({"type": "WindowsRegistry", "path": "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run"}),
            None,
        ),
        (
            json!({"type": "WindowsRegistry", "path": "HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\Netlogon\\Parameters"}),
            None,
        ),
        (
            json!({"type": "WindowsRegistry", "path": "SOFTWARE\\Run"}),
            Some("not a registry key"),
        ),
        // Services are names, not paths.
        (json!({"type": "LinuxService", "path": "ssh.service"}), None),
        (json!({"type": "LinuxService", "path": "cron*"}), None),
        (
            json!({"type": "LinuxService", "path": "/etc/systemd/system/ssh.service"}),
            Some("not a service name"),
        ),
        (json!({"type": "WindowsService", "path": "WinDefend"}), None),
        // No .. segments, wherever they are.
        (
            json!({"type": "LinuxFile", "path": "/etc/../shadow"}),
            Some("contains a .. segment"),
        ),
        (
            json!({"type": "LinuxFile", "path": "/etc/ssh/.."}),
            Some("contains a .. segment"),
        ),
        (json!({"type": "LinuxFile", "path": "/etc/..d/x"}), None),
        (
            json!({"type": "WindowsFile", "path": "C:\\Windows\\..\\x"}),
            Some("contains a .. segment"),
        ),
        // Wildcards are fine in the last segment, with ? too.
        (json!({"type": "LinuxFile", "path": "/etc/cron.d/job?"}), None),
        (
            json!({"type": "LinuxFile", "path": "/etc/cron?/job"}),
            Some("wildcard before its last segment"),
        ),
        // maxDepth needs recursive.
        (
            json!({"type": "LinuxFile", "path": "/srv", "maxDepth": 2}),
            Some("maxDepth is set but recursive is false"),
        ),
        (
            json!({"type": "LinuxFile", "path": "/srv", "recursive": true, "maxDepth": 2}),
            None,
        ),
        (
            json!({"type": "LinuxFile", "path": "/srv", "ignoreAttributes": ["xattrs", "ctime"]}),
            None,
        ),
        (
            json!({"type": "LinuxFile", "path": "/srv", "ignoreAttributes": ["mtime", "dropIns"]}),
            Some("ignoreAttributes names dropIns, which only a LinuxService tracks"),
        ),
        (
            json!({"type": "LinuxService", "path": "kubelet", "ignoreAttributes": ["dropIns"]}),
            None,
        ),
        (
            json!({"type": "LinuxService", "path": "kubelet", "ignoreAttributes": ["enablement", "capabilities"]}),
            Some("ignoreAttributes names capabilities, which a LinuxService does not track"),
        ),
    ]
}

#[test]
fn entity_admission_table() {
    let cases = entity_cases();
    assert!(cases.len() >= 25);
    for (spec, expected) in cases {
        let label = spec.to_string();
        match (verdict(entity(spec).validate_cel()), expected) {
            (Ok(()), None) => {}
            (Err(messages), Some(fragment)) => assert!(
                messages.iter().any(|m| m.contains(fragment)),
                "{label}: expected a refusal containing {fragment:?}, got {messages:?}"
            ),
            (Ok(()), Some(fragment)) => panic!("{label}: admitted, expected refusal {fragment:?}"),
            (Err(messages), None) => panic!("{label}: refused with {messages:?}, expected admission"),
        }
    }
}

#[test]
fn refusal_messages_name_the_offending_path() {
    let messages =
        verdict(entity(json!({"type": "LinuxFile", "path": "/etc/*/passwd"})).validate_cel()).unwrap_err();
    assert!(
        messages.iter().any(|m| m.contains("/etc/*/passwd")),
        "{messages:?}"
    );
}

#[test]
fn workspace_admission_table() {
    let cases: Vec<(serde_json::Value, Option<&str>)> = vec![
        (json!({}), None),
        (json!({"scan": {"interval": "1m"}}), None),
        (json!({"scan": {"interval": "1h30m"}}), None),
        (
            json!({"scan": {"interval": "59s"}}),
            Some("scan.interval 59s is not allowed"),
        ),
        (json!({"scan": {"interval": "30s"}}), Some("at least 1m")),
        (
            json!({"scan": {"interval": "15"}}),
            Some("scan.interval 15 is not allowed"),
        ),
        (
            json!({"scan": {"interval": "1d"}}),
            Some("scan.interval 1d is not allowed"),
        ),
        (json!({"scan": {"rehashEvery": "7d"}}), None),
        (
            json!({"scan": {"rehashEvery": "daily"}}),
            Some("scan.rehashEvery daily is not a duration"),
        ),
        (json!({"scan": {"maxHashSize": "2Gi"}}), None),
        (
            json!({"scan": {"maxHashSize": "2GB"}}),
            Some("scan.maxHashSize 2GB is not a size"),
        ),
        (json!({"scan": {"maxReadRate": "20Mi"}}), None),
        (
            json!({"scan": {"maxReadRate": "20MB/s"}}),
            Some("scan.maxReadRate 20MB/s is not a size"),
        ),
        (json!({"retention": {"maxAge": "30d"}}), None),
        (
            json!({"retention": {"maxAge": "a month"}}),
            Some("retention.maxAge a month is not a duration"),
        ),
        (
            json!({"content": {"maxDiffBytes": "64Ki", "maxFileSize": "1Mi"}}),
            None,
        ),
        (
            json!({"content": {"maxFileSize": "-1"}}),
            Some("content.maxFileSize -1 is not a size"),
        ),
        // Content bounds: a FileChange never exceeds what the API server accepts.
        (json!({"content": {"maxDiffBytes": "256Ki"}}), None),
        (json!({"content": {"maxDiffBytes": "262144"}}), None),
        (json!({"content": {"maxDiffBytes": "000256Ki"}}), None),
        (json!({"content": {"maxDiffBytes": "262k"}}), None),
        (json!({"content": {"maxDiffBytes": "0Ti"}}), None),
        (
            json!({"content": {"maxDiffBytes": "257Ki"}}),
            Some("content.maxDiffBytes 257Ki is too large: it may be at most 256Ki"),
        ),
        (
            json!({"content": {"maxDiffBytes": "262145"}}),
            Some("is too large"),
        ),
        (json!({"content": {"maxDiffBytes": "263k"}}), Some("is too large")),
        (json!({"content": {"maxDiffBytes": "1Mi"}}), Some("is too large")),
        (json!({"content": {"maxDiffBytes": "1M"}}), Some("is too large")),
        (json!({"content": {"maxDiffBytes": "1G"}}), Some("is too large")),
        (json!({"content": {"maxFileSize": "5Mi"}}), None),
        (json!({"content": {"maxFileSize": "5120Ki"}}), None),
        (json!({"content": {"maxFileSize": "5M"}}), None),
        (json!({"content": {"maxFileSize": "5242880"}}), None),
        (
            json!({"content": {"maxFileSize": "5242881"}}),
            Some("content.maxFileSize 5242881 is too large: it may be at most 5Mi"),
        ),
        (
            json!({"content": {"maxFileSize": "5121Ki"}}),
            Some("is too large"),
        ),
        (json!({"content": {"maxFileSize": "6M"}}), Some("is too large")),
        (json!({"content": {"maxFileSize": "1Gi"}}), Some("is too large")),
        (json!({"content": {"revealSensitive": true}}), None),
    ];
    for (spec, expected) in cases {
        let label = spec.to_string();
        match (verdict(workspace(spec).validate_cel()), expected) {
            (Ok(()), None) => {}
            (Err(messages), Some(fragment)) => {
                assert!(
                    messages.iter().any(|m| m.contains(fragment)),
                    "{label}: {messages:?}"
                )
            }
            (got, want) => panic!("{label}: got {got:?}, expected {want:?}"),
        }
    }
}

#[test]
fn names_longer_than_a_label_value_are_refused() {
    let long = "w".repeat(64);
    let mut ws = workspace(json!({}));
    ws.metadata.name = Some(long.clone());
    let messages = verdict(ws.validate_cel()).unwrap_err();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("FimWorkspace name may be at most 63 characters")),
        "{messages:?}"
    );
    let mut e = entity(json!({"type": "LinuxFile", "path": "/srv"}));
    e.metadata.name = Some("e".repeat(63));
    assert_eq!(verdict(e.validate_cel()), Ok(()), "63 characters fit");
    e.metadata.name = Some("e".repeat(64));
    let messages = verdict(e.validate_cel()).unwrap_err();
    assert!(
        messages.iter().any(|m| m.contains("MonitoredEntity name")),
        "{messages:?}"
    );
}

#[test]
fn every_size_the_bounded_rule_admits_parses_within_the_bound() {
    // The bounded pattern is computed; check it against parse_size around every boundary.
    let limit = kubefim_crds::workspace::MAX_DIFF_BYTES;
    for value in [
        "0",
        "1",
        "9",
        "99",
        "262143",
        "262144",
        "262145",
        "300000",
        "999999",
        "255Ki",
        "256Ki",
        "257Ki",
        "1000Ki",
        "261k",
        "262k",
        "263k",
        "0M",
        "1M",
        "0Mi",
        "1Mi",
        "0G",
        "0Ti",
        "1Ti",
        "0000262144",
    ] {
        let admitted = verdict(workspace(json!({"content": {"maxDiffBytes": value}})).validate_cel()).is_ok();
        let fits = kubefim_crds::units::parse_size(value).unwrap() <= limit;
        assert_eq!(admitted, fits, "{value}");
    }
}

#[test]
fn admitted_values_parse_in_rust() {
    // What the API server admits, the agent and operator must be able to use.
    for value in ["1m", "1h30m", "7d", "250ms"] {
        kubefim_crds::units::parse_duration(value).unwrap();
    }
    for value in ["512", "16Ki", "2Gi", "3G"] {
        kubefim_crds::units::parse_size(value).unwrap();
    }
}
