//! The built-in recommended catalog (docs/design.md, "Recommended catalog"): Defender for Cloud's recommended Linux files,
//! Windows files and registry keys, plus the files an attacker of a Kubernetes node goes for.
//! Ids are stable API: users opt out of items by id in `recommended.exclude`, so an id is never
//! renamed or reused.

use crate::EntityType;

/// The operating system a catalog item applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetOs {
    /// Linux nodes.
    Linux,
    /// Nodes labelled `kubernetes.io/os=windows`.
    Windows,
}

impl TargetOs {
    /// The OS of a node from its `kubernetes.io/os` label value (absent means Linux).
    pub fn from_node_label(value: Option<&str>) -> Self {
        match value {
            Some("windows") => Self::Windows,
            _ => Self::Linux,
        }
    }
}

/// One recommended item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CatalogItem {
    /// Stable id, used in `recommended.exclude` and as `recommended.<id>` entity names.
    pub id: &'static str,
    /// What the path names.
    pub entity_type: EntityType,
    /// Path (or unit glob for services, or registry key).
    pub path: &'static str,
    /// Whether everything below the path is monitored too.
    pub recursive: bool,
    /// The OS the item applies to.
    pub os: TargetOs,
    /// Why it is worth monitoring.
    pub description: &'static str,
}

const fn linux(
    id: &'static str,
    path: &'static str,
    recursive: bool,
    description: &'static str,
) -> CatalogItem {
    CatalogItem {
        id,
        entity_type: EntityType::LinuxFile,
        path,
        recursive,
        os: TargetOs::Linux,
        description,
    }
}

const fn windows_file(id: &'static str, path: &'static str) -> CatalogItem {
    CatalogItem {
        id,
        entity_type: EntityType::WindowsFile,
        path,
        recursive: false,
        os: TargetOs::Windows,
        description: "Defender for Cloud recommended Windows file",
    }
}

const fn registry(id: &'static str, path: &'static str) -> CatalogItem {
    CatalogItem {
        id,
        entity_type: EntityType::WindowsRegistry,
        path,
        recursive: true,
        os: TargetOs::Windows,
        description: "Defender for Cloud recommended registry key",
    }
}

/// Every recommended item, Linux first, in a stable order.
pub const RECOMMENDED: &[CatalogItem] = &[
    linux("bin-login", "/bin/login", false, "login program"),
    linux("bin-passwd", "/bin/passwd", false, "password change program"),
    linux("etc-conf", "/etc/*.conf", false, "system configuration files"),
    linux("usr-bin", "/usr/bin", true, "user binaries"),
    linux("usr-sbin", "/usr/sbin", true, "system binaries"),
    linux("bin", "/bin", true, "essential binaries"),
    linux("sbin", "/sbin", true, "essential system binaries"),
    linux("boot", "/boot", true, "kernels and boot loader"),
    linux(
        "usr-local-bin",
        "/usr/local/bin",
        true,
        "locally installed binaries",
    ),
    linux(
        "usr-local-sbin",
        "/usr/local/sbin",
        true,
        "locally installed system binaries",
    ),
    linux("opt-bin", "/opt/bin", true, "add-on binaries"),
    linux("opt-sbin", "/opt/sbin", true, "add-on system binaries"),
    linux("etc-crontab", "/etc/crontab", false, "system crontab"),
    linux("etc-init-d", "/etc/init.d", true, "SysV init scripts"),
    linux("etc-cron-hourly", "/etc/cron.hourly", true, "hourly cron jobs"),
    linux("etc-cron-daily", "/etc/cron.daily", true, "daily cron jobs"),
    linux("etc-cron-weekly", "/etc/cron.weekly", true, "weekly cron jobs"),
    linux("etc-cron-monthly", "/etc/cron.monthly", true, "monthly cron jobs"),
    linux(
        "kubernetes-manifests",
        "/etc/kubernetes/manifests",
        true,
        "static pod manifests run by the kubelet",
    ),
    linux(
        "kubernetes-pki",
        "/etc/kubernetes/pki",
        true,
        "cluster certificates and keys",
    ),
    linux(
        "kubelet-config",
        "/var/lib/kubelet/config.yaml",
        false,
        "kubelet configuration",
    ),
    linux(
        "containerd",
        "/etc/containerd",
        true,
        "container runtime configuration",
    ),
    linux("ssh", "/etc/ssh", true, "ssh daemon configuration and host keys"),
    linux(
        "root-authorized-keys",
        "/root/.ssh/authorized_keys",
        false,
        "keys that may log in as root",
    ),
    linux("sudoers", "/etc/sudoers", false, "sudo policy"),
    linux("sudoers-d", "/etc/sudoers.d", true, "sudo policy drop-ins"),
    linux(
        "ld-so-preload",
        "/etc/ld.so.preload",
        false,
        "libraries injected into every process",
    ),
    linux("pam-d", "/etc/pam.d", true, "authentication modules"),
    linux(
        "dpkg-database",
        "/var/lib/dpkg",
        true,
        "the dpkg package database: what package attribution trusts, and maintainer scripts",
    ),
    linux(
        "rpm-database",
        "/var/lib/rpm/rpmdb.sqlite",
        false,
        "the rpm package database: what package attribution trusts",
    ),
    linux(
        "apk-database",
        "/lib/apk/db",
        true,
        "the apk package database: what package attribution trusts",
    ),
    linux(
        "systemd-user-units",
        "/etc/systemd/user",
        true,
        "user units and their drop-ins, started for every user session",
    ),
    linux(
        "systemd-user-units-vendor",
        "/usr/lib/systemd/user",
        true,
        "vendor user units and their drop-ins",
    ),
    linux(
        "systemd-system-generators",
        "/etc/systemd/system-generators",
        true,
        "programs systemd runs at boot to write units",
    ),
    linux(
        "systemd-system-generators-vendor",
        "/usr/lib/systemd/system-generators",
        true,
        "vendor programs systemd runs at boot to write units",
    ),
    linux(
        "systemd-user-generators",
        "/etc/systemd/user-generators",
        true,
        "programs systemd runs to write user units",
    ),
    linux(
        "systemd-config",
        "/etc/systemd/*.conf",
        false,
        "systemd's own configuration (system.conf, journald.conf, ...)",
    ),
    linux(
        "systemd-config-d",
        "/etc/systemd/*.conf.d",
        true,
        "drop-ins of systemd's own configuration",
    ),
    CatalogItem {
        id: "systemd-units",
        entity_type: EntityType::LinuxService,
        path: "*",
        recursive: false,
        os: TargetOs::Linux,
        description: "systemd units: the winning unit file, its drop-ins and whether it is enabled",
    },
    windows_file("win-autoexec-bat", r"C:\autoexec.bat"),
    windows_file("win-boot-ini", r"C:\boot.ini"),
    windows_file("win-config-sys", r"C:\config.sys"),
    windows_file("win-system-ini", r"C:\Windows\system.ini"),
    windows_file("win-win-ini", r"C:\Windows\win.ini"),
    windows_file("win-regedit", r"C:\Windows\regedit.exe"),
    windows_file("win-userinit", r"C:\Windows\System32\userinit.exe"),
    windows_file("win-explorer", r"C:\Windows\explorer.exe"),
    windows_file(
        "win-msseces",
        r"C:\Program Files\Microsoft Security Client\msseces.exe",
    ),
    registry(
        "reg-sip-remove-signed-c689",
        r"HKLM\SOFTWARE\Microsoft\Cryptography\OID\EncodingType 0\CryptSIPDllRemoveSignedDataMsg\{C689AAB8-8E78-11D0-8C47-00C04FC295EE}",
    ),
    registry(
        "reg-sip-remove-signed-603b",
        r"HKLM\SOFTWARE\Microsoft\Cryptography\OID\EncodingType 0\CryptSIPDllRemoveSignedDataMsg\{603BCC1F-4B59-4E08-B724-D2C6297EF351}",
    ),
    registry(
        "reg-inifilemapping-boot",
        r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\IniFileMapping\SYSTEM.ini\boot",
    ),
    registry(
        "reg-nt-windows",
        r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Windows",
    ),
    registry(
        "reg-winlogon",
        r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon",
    ),
    registry(
        "reg-shell-folders",
        r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\Shell Folders",
    ),
    registry(
        "reg-user-shell-folders",
        r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer\User Shell Folders",
    ),
    registry("reg-run", r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run"),
    registry(
        "reg-runonce",
        r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\RunOnce",
    ),
    registry(
        "reg-runonceex",
        r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\RunOnceEx",
    ),
    registry(
        "reg-runservices",
        r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\RunServices",
    ),
    registry(
        "reg-runservicesonce",
        r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\RunServicesOnce",
    ),
    registry(
        "reg-wow64-sip-remove-signed-c689",
        r"HKLM\SOFTWARE\WOW6432Node\Microsoft\Cryptography\OID\EncodingType 0\CryptSIPDllRemoveSignedDataMsg\{C689AAB8-8E78-11D0-8C47-00C04FC295EE}",
    ),
    registry(
        "reg-wow64-sip-remove-signed-603b",
        r"HKLM\SOFTWARE\WOW6432Node\Microsoft\Cryptography\OID\EncodingType 0\CryptSIPDllRemoveSignedDataMsg\{603BCC1F-4B59-4E08-B724-D2C6297EF351}",
    ),
    registry(
        "reg-wow64-inifilemapping-boot",
        r"HKLM\SOFTWARE\WOW6432Node\Microsoft\Windows NT\CurrentVersion\IniFileMapping\system.ini\boot",
    ),
    registry(
        "reg-wow64-nt-windows",
        r"HKLM\SOFTWARE\WOW6432Node\Microsoft\Windows NT\CurrentVersion\Windows",
    ),
    registry(
        "reg-wow64-winlogon",
        r"HKLM\SOFTWARE\WOW6432Node\Microsoft\Windows NT\CurrentVersion\Winlogon",
    ),
    registry(
        "reg-wow64-shell-folders",
        r"HKLM\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Explorer\Shell Folders",
    ),
    registry(
        "reg-wow64-user-shell-folders",
        r"HKLM\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Explorer\User Shell Folders",
    ),
    registry(
        "reg-wow64-run",
        r"HKLM\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Run",
    ),
    registry(
        "reg-wow64-runonce",
        r"HKLM\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\RunOnce",
    ),
    registry(
        "reg-wow64-runonceex",
        r"HKLM\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\RunOnceEx",
    ),
    registry(
        "reg-wow64-runservices",
        r"HKLM\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\RunServices",
    ),
    registry(
        "reg-wow64-runservicesonce",
        r"HKLM\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\RunServicesOnce",
    ),
    registry("reg-hivelist", r"HKLM\SYSTEM\CurrentControlSet\Control\hivelist"),
    registry(
        "reg-knowndlls",
        r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\KnownDLLs",
    ),
    registry(
        "reg-firewall-domain",
        r"HKLM\SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy\DomainProfile",
    ),
    registry(
        "reg-firewall-public",
        r"HKLM\SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy\PublicProfile",
    ),
    registry(
        "reg-firewall-standard",
        r"HKLM\SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy\StandardProfile",
    ),
];

/// The catalog item with this id.
pub fn find(id: &str) -> Option<&'static CatalogItem> {
    RECOMMENDED.iter().find(|item| item.id == id)
}

/// The items for one OS, minus the excluded ids, in catalog order.
pub fn items_for<'a>(os: TargetOs, exclude: &'a [String]) -> impl Iterator<Item = &'static CatalogItem> + 'a {
    RECOMMENDED
        .iter()
        .filter(move |item| item.os == os && !exclude.iter().any(|id| id == item.id))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_are_unique_and_label_safe() {
        let mut seen = HashSet::new();
        for item in RECOMMENDED {
            assert!(seen.insert(item.id), "duplicate id {}", item.id);
            assert!(item.id.len() <= 63, "{} is too long for a label value", item.id);
            assert!(
                item.id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            );
        }
    }

    #[test]
    fn every_design_linux_path_is_in_the_catalog() {
        let paths: HashSet<_> = items_for(TargetOs::Linux, &[]).map(|item| item.path).collect();
        for path in [
            "/bin/login",
            "/bin/passwd",
            "/etc/*.conf",
            "/usr/bin",
            "/usr/sbin",
            "/bin",
            "/sbin",
            "/boot",
            "/usr/local/bin",
            "/usr/local/sbin",
            "/opt/bin",
            "/opt/sbin",
            "/etc/crontab",
            "/etc/init.d",
            "/etc/cron.hourly",
            "/etc/cron.daily",
            "/etc/cron.weekly",
            "/etc/cron.monthly",
            "/etc/kubernetes/manifests",
            "/etc/kubernetes/pki",
            "/var/lib/kubelet/config.yaml",
            "/etc/containerd",
            "/etc/ssh",
            "/root/.ssh/authorized_keys",
            "/etc/sudoers",
            "/etc/sudoers.d",
            "/etc/ld.so.preload",
            "/etc/pam.d",
        ] {
            assert!(paths.contains(path), "{path} missing");
        }
    }

    #[test]
    fn the_package_databases_attribution_reads_are_monitored() {
        let items: Vec<_> = items_for(TargetOs::Linux, &[])
            .map(|item| (item.id, item.path))
            .collect();
        for expected in [
            ("dpkg-database", "/var/lib/dpkg"),
            ("rpm-database", "/var/lib/rpm/rpmdb.sqlite"),
            ("apk-database", "/lib/apk/db"),
        ] {
            assert!(items.contains(&expected), "{expected:?} missing");
        }
    }

    #[test]
    fn exclude_removes_exactly_the_named_items() {
        let all = items_for(TargetOs::Linux, &[]).count();
        let exclude = vec!["usr-bin".to_string(), "ssh".to_string(), "no-such-id".to_string()];
        let kept: Vec<_> = items_for(TargetOs::Linux, &exclude).map(|item| item.id).collect();
        assert_eq!(kept.len(), all - 2);
        assert!(!kept.contains(&"usr-bin") && !kept.contains(&"ssh"));
    }

    #[test]
    fn windows_items_are_only_windows_types() {
        for item in items_for(TargetOs::Windows, &[]) {
            assert!(!item.entity_type.is_linux(), "{}", item.id);
        }
        assert!(items_for(TargetOs::Windows, &[]).count() >= 9 + 25);
    }
}
