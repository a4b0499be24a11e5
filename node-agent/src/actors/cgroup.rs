//! The container and pod a process runs in, from its cgroup path as the kubelet and the
//! container runtimes name them: with the cgroupfs driver
//! `/kubepods/<qos>/pod<uid>/<container id>` (CRI-O `crio-<id>`), with the systemd driver
//! `/kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid with _>.slice/<runtime>-<id>.scope`
//! (`cri-containerd-`, `crio-`, `docker-`), under any prefix (a cgroup root, a nested runtime),
//! cgroup v1 and v2 alike; and Docker's own `/docker/<id>` and `docker-<id>.scope` outside
//! Kubernetes. Nothing is guessed: a path that names neither gives neither.

use kubefim_crds::filechange::{ActorContainer, ActorPod};

/// What a cgroup path says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    pub container: Option<ActorContainer>,
    pub pod: Option<ActorPod>,
}

fn is_container_id(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn is_pod_uid(text: &str) -> bool {
    // A UUID: 8-4-4-4-12 hex digits.
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The pod uid a path component names, if it is a pod's cgroup.
fn pod_of(component: &str) -> Option<String> {
    if let Some(uid) = component.strip_prefix("pod") {
        return is_pod_uid(uid).then(|| uid.to_string());
    }
    // kubepods-pod<uid>.slice, kubepods-<qos>-pod<uid>.slice; the uid's dashes written as _.
    let slice = component.strip_suffix(".slice")?;
    let (_, uid) = slice.rsplit_once("-pod")?;
    let uid = uid.replace('_', "-");
    (slice.contains("kubepods") && is_pod_uid(&uid)).then_some(uid)
}

/// The container a path component names: (runtime if the name says it, id).
fn container_of(component: &str) -> Option<(Option<&'static str>, String)> {
    let scope = component.strip_suffix(".scope");
    let name = scope.unwrap_or(component);
    for (prefix, runtime) in [
        ("cri-containerd-", "containerd"),
        ("crio-", "cri-o"),
        ("docker-", "docker"),
    ] {
        if let Some(id) = name.strip_prefix(prefix) {
            return is_container_id(id).then(|| (Some(runtime), id.to_string()));
        }
    }
    (scope.is_none() && is_container_id(name)).then(|| (None, name.to_string()))
}

/// What `path` (one cgroup path, as /proc/PID/cgroup gives it) says.
pub fn placement(path: &str) -> Placement {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let pod_at = components.iter().rposition(|c| pod_of(c).is_some());
    let mut placement = Placement::default();
    if let Some(at) = pod_at {
        placement.pod = pod_of(components[at]).map(|uid| ActorPod {
            uid,
            ..ActorPod::default()
        });
        // The container is the component right below its pod.
        if let Some((runtime, id)) = components.get(at + 1).and_then(|c| container_of(c)) {
            placement.container = Some(ActorContainer {
                id,
                runtime: runtime.map(str::to_string),
            });
        }
        return placement;
    }
    // Docker outside Kubernetes: /docker/<id> or /system.slice/docker-<id>.scope.
    let docker = match components.as_slice() {
        [.., "docker", id] if is_container_id(id) => Some(id.to_string()),
        [.., last] => match container_of(last) {
            Some((Some("docker"), id)) => Some(id),
            _ => None,
        },
        [] => None,
    };
    placement.container = docker.map(|id| ActorContainer {
        id,
        runtime: Some("docker".to_string()),
    });
    placement
}

/// The cgroup path to report from /proc/PID/cgroup, and what it says: the first line whose
/// path names a container or pod, else the unified hierarchy's (`0::`), else the first.
pub fn from_proc(text: &str) -> Option<(String, Placement)> {
    let paths: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let id = fields.next()?;
            let _controllers = fields.next()?;
            Some((id, fields.next()?))
        })
        .collect();
    if let Some(found) = paths.iter().find_map(|(_, path)| {
        let placement = placement(path);
        (placement != Placement::default()).then(|| (path.to_string(), placement))
    }) {
        return Some(found);
    }
    let (_, path) = paths
        .iter()
        .find(|(id, _)| *id == "0")
        .or_else(|| paths.first())?;
    Some((path.to_string(), Placement::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const UID: &str = "5f1c9c1e-3c1a-4b7e-9d2f-0a1b2c3d4e5f";

    fn says(path: &str) -> (Option<(Option<String>, String)>, Option<String>) {
        let placement = placement(path);
        (
            placement.container.map(|c| (c.runtime, c.id)),
            placement.pod.map(|p| p.uid),
        )
    }

    #[test]
    fn kubelet_cgroup_paths_name_the_container_and_the_pod() {
        let underscored = UID.replace('-', "_");
        let containerd = Some((Some("containerd".to_string()), ID.to_string()));
        let bare = Some((None, ID.to_string()));
        let pod = Some(UID.to_string());
        for (path, expected) in [
            // cgroupfs driver, v1 and v2 (the same path), every QoS class.
            (
                format!("/kubepods/besteffort/pod{UID}/{ID}"),
                (bare.clone(), pod.clone()),
            ),
            (
                format!("/kubepods/burstable/pod{UID}/{ID}"),
                (bare.clone(), pod.clone()),
            ),
            (format!("/kubepods/pod{UID}/{ID}"), (bare.clone(), pod.clone())),
            (
                format!("/kubepods/besteffort/pod{UID}/crio-{ID}"),
                (Some((Some("cri-o".into()), ID.into())), pod.clone()),
            ),
            // systemd driver.
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{underscored}.slice/cri-containerd-{ID}.scope"
                ),
                (containerd.clone(), pod.clone()),
            ),
            (
                format!("/kubepods.slice/kubepods-pod{underscored}.slice/crio-{ID}.scope"),
                (Some((Some("cri-o".into()), ID.into())), pod.clone()),
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{underscored}.slice/docker-{ID}.scope"
                ),
                (Some((Some("docker".into()), ID.into())), pod.clone()),
            ),
            // Under a cgroup root or a nested runtime.
            (
                format!(
                    "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{underscored}.slice/cri-containerd-{ID}.scope"
                ),
                (containerd.clone(), pod.clone()),
            ),
            (
                format!("/system.slice/containerd.service/kubepods/besteffort/pod{UID}/{ID}"),
                (bare.clone(), pod.clone()),
            ),
            // The pod's own cgroup (its sandbox's parent): a pod, no container.
            (format!("/kubepods/besteffort/pod{UID}"), (None, pod.clone())),
            // Docker outside Kubernetes.
            (
                format!("/docker/{ID}"),
                (Some((Some("docker".into()), ID.into())), None),
            ),
            (
                format!("/system.slice/docker-{ID}.scope"),
                (Some((Some("docker".into()), ID.into())), None),
            ),
            // Nothing of the kind.
            (
                "/user.slice/user-0.slice/session-3.scope".to_string(),
                (None, None),
            ),
            ("/system.slice/kubelet.service".to_string(), (None, None)),
            (format!("/kubepods/besteffort/pod{UID}x/{ID}"), (None, None)),
            (format!("/kubepods/besteffort/podnot-a-uid/{ID}"), (None, None)),
            (
                format!("/kubepods/besteffort/pod{UID}/{}", &ID[..63]),
                (None, pod.clone()),
            ),
            ("/".to_string(), (None, None)),
        ] {
            assert_eq!(says(&path), expected, "{path}");
        }
    }

    #[test]
    fn the_line_naming_a_container_is_chosen_from_cgroup_v1s_many() {
        let v1 = format!(
            "12:pids:/kubepods/besteffort/pod{UID}/{ID}\n11:memory:/kubepods/besteffort/pod{UID}/{ID}\n1:name=systemd:/system.slice/containerd.service\n0::/\n"
        );
        let (path, placement) = from_proc(&v1).unwrap();
        assert_eq!(path, format!("/kubepods/besteffort/pod{UID}/{ID}"));
        assert_eq!(placement.pod.unwrap().uid, UID);
        let host = "12:pids:/user.slice\n1:name=systemd:/user.slice/user-0.slice/session-1.scope\n0::/user.slice/user-0.slice/session-1.scope\n";
        let (path, placement) = from_proc(host).unwrap();
        assert_eq!(path, "/user.slice/user-0.slice/session-1.scope");
        assert_eq!(placement, Placement::default());
        assert_eq!(from_proc(""), None);
    }
}
