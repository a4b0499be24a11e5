//! Which host paths are secrets: their content is never diffed into a FileChange (or a JSON
//! line) unless the workspace sets `content.revealSensitive`. Watching a host file is reading
//! it, so a FileContent entity on a key or a kubeconfig must not become a way to read the host
//! (docs/design.md, "Security posture"). The changes of such a path keep their hashes and say why the diff was withheld.
//! One function, shared by the agent, the docs and the tests, so the list cannot drift.

/// Exact paths whose content is secret.
const SECRET_FILES: &[&str] = &[
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/shadow-",
    "/etc/gshadow-",
    "/var/lib/kubelet/kubeconfig",
];

/// Directories everything below which is secret: kubelet credentials, the volumes of pods
/// (Secrets and projected service account tokens), and service account token mounts.
const SECRET_TREES: &[&str] = &[
    "/var/lib/kubelet/pki",
    "/var/lib/kubelet/pods",
    "/var/run/secrets/kubernetes.io/serviceaccount",
    "/run/secrets/kubernetes.io/serviceaccount",
];

/// Whether the content of the host path `path` (absolute, host view) is secret.
pub fn is_sensitive_path(path: &str) -> bool {
    if SECRET_FILES.contains(&path) {
        return true;
    }
    if SECRET_TREES.iter().any(|tree| {
        path.strip_prefix(tree)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }) {
        return true;
    }
    let (directory, name) = path.rsplit_once('/').unwrap_or(("", path));
    // Kubeconfigs of the control plane: admin.conf, kubelet.conf, super-admin.conf...
    if directory == "/etc/kubernetes" && name.ends_with(".conf") {
        return true;
    }
    is_private_key_name(name)
}

/// File names of private keys: `*.key`, `*_key` (ssh host keys), `*-key.pem`, and `id_*`
/// without `.pub` (ssh user keys).
fn is_private_key_name(name: &str) -> bool {
    name.ends_with(".key")
        || name.ends_with("_key")
        || name.ends_with("-key.pem")
        || (name.starts_with("id_") && !name.ends_with(".pub"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_sensitive() {
        for path in [
            "/etc/shadow",
            "/etc/gshadow-",
            "/etc/kubernetes/admin.conf",
            "/etc/kubernetes/super-admin.conf",
            "/etc/kubernetes/pki/apiserver.key",
            "/etc/kubernetes/pki/etcd/peer.key",
            "/etc/ssh/ssh_host_ed25519_key",
            "/root/.ssh/id_rsa",
            "/home/ops/.ssh/id_ed25519",
            "/etc/etcd/pki/server-key.pem",
            "/var/lib/kubelet/kubeconfig",
            "/var/lib/kubelet/pki",
            "/var/lib/kubelet/pki/kubelet-client-current.pem",
            "/var/lib/kubelet/pods/3f1c/volumes/kubernetes.io~projected/kube-api-access-x/token",
            "/var/run/secrets/kubernetes.io/serviceaccount/token",
            "/run/secrets/kubernetes.io/serviceaccount/token",
        ] {
            assert!(is_sensitive_path(path), "{path}");
        }
    }

    #[test]
    fn public_material_and_ordinary_configs_are_not() {
        for path in [
            "/etc/passwd",
            "/etc/hosts",
            "/etc/shadow.d/readme",
            "/etc/kubernetes/manifests/kube-apiserver.yaml",
            "/etc/kubernetes/kubelet/config.conf",
            "/etc/kubernetes/pki/ca.crt",
            "/etc/ssh/ssh_host_ed25519_key.pub",
            "/etc/ssh/sshd_config",
            "/root/.ssh/id_rsa.pub",
            "/root/.ssh/authorized_keys",
            "/var/lib/kubelet/config.yaml",
            "/var/lib/kubelet/pki-notes",
            "/usr/share/doc/keyboard",
        ] {
            assert!(!is_sensitive_path(path), "{path}");
        }
    }
}
