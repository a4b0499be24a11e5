//! Entity resolution: turns an entity's path as written (`$HOME/.ssh`, `/etc/*.conf`) into what
//! the walker needs: the host-view components of its base, an optional last-segment pattern,
//! how deep to descend and which paths to leave out. Variable expansion happens here, so the
//! checks CEL made at admission are made again on the expanded path: a variable that expands to
//! `..` or a relative path is an entity error, never an escape.

use globset::{Glob, GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};
use kubefim_crds::{EntityConfig, EntityType, HashAlgorithm};

/// Hard limit on directory levels below an entity's base, whatever maxDepth says: past it a
/// subtree is reported as too deep instead of holding one more directory handle open.
pub const HARD_MAX_LEVELS: u32 = 1024;

/// Top-level directories that hold kernel pseudo-filesystems: reading them is meaningless for
/// integrity and some files there block or have side effects.
pub const PSEUDO_FILESYSTEMS: [&str; 3] = ["proc", "sys", "dev"];

/// An entity path the agent cannot monitor on this node, with the reason for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "variable {name} in path {path:?} is not set in the agent's environment; set it or change the path"
    )]
    UnsetVariable { path: String, name: String },
    #[error("path {path:?} expands to {expanded:?}, which is not absolute; entity paths must start with /")]
    NotAbsolute { path: String, expanded: String },
    #[error("path {path:?} expands to {expanded:?}, which contains a .. segment; write the path without ..")]
    ParentSegment { path: String, expanded: String },
    #[error("path {path:?} has a wildcard before its last segment; use * and ? only in the last segment")]
    WildcardNotLast { path: String },
    #[error("pattern {pattern:?} is not a valid glob: {reason}")]
    BadGlob { pattern: String, reason: String },
    #[error("path {path:?} is inside /{fs}, a kernel pseudo-filesystem that is never monitored")]
    PseudoFilesystem { path: String, fs: String },
    #[error(
        "{entity_type} entities are not supported by this agent (Linux); they are served by agents on Windows nodes"
    )]
    Unsupported { entity_type: EntityType },
}

/// An entity ready to walk.
#[derive(Debug, Clone)]
pub struct ResolvedEntity {
    pub name: String,
    pub entity_type: EntityType,
    /// The expanded host-view path, for messages.
    pub path: String,
    /// Components of the base: the path itself, or its parent directory when the last segment is
    /// a pattern.
    pub base: Vec<Vec<u8>>,
    /// The last-segment pattern (`*.conf` in `/etc/*.conf`), matched against names in `base`.
    pub pattern: Option<GlobMatcher>,
    /// How many directory levels below the base to list: 1 for a plain directory, more when
    /// recursive.
    pub levels: u32,
    pub exclude: Option<GlobSet>,
    /// Attributes whose changes are not reported (`ignoreAttributes`).
    pub ignore_attributes: Vec<kubefim_crds::filechange::ChangedAttribute>,
    /// Changes whenever anything that decides which files belong to the entity, or how they are
    /// hashed, changes; a new fingerprint re-baselines the entity silently.
    pub fingerprint: String,
}

/// Expands `$VAR` and `${VAR}` with `lookup`.
pub fn expand_variables(path: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, ResolveError> {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        let (name, after) = if let Some(braced) = rest.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], &braced[end + 1..]),
                None => ("", rest),
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        if name.is_empty() {
            out.push('$');
            continue;
        }
        let value = lookup(name).ok_or_else(|| ResolveError::UnsetVariable {
            path: path.to_string(),
            name: name.to_string(),
        })?;
        out.push_str(&value);
        rest = after;
    }
    out.push_str(rest);
    Ok(out)
}

fn has_wildcard(segment: &str) -> bool {
    segment.contains(['*', '?', '['])
}

fn glob(pattern: &str) -> Result<Glob, ResolveError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| ResolveError::BadGlob {
            pattern: pattern.to_string(),
            reason: e.kind().to_string(),
        })
}

/// Resolves `entity` for a Linux node; `lookup` reads environment variables.
pub fn resolve(
    entity: &EntityConfig,
    hash_algorithm: HashAlgorithm,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<ResolvedEntity, ResolveError> {
    if !entity.entity_type.is_linux() {
        return Err(ResolveError::Unsupported {
            entity_type: entity.entity_type,
        });
    }
    let (base, pattern, expanded) = if entity.entity_type == EntityType::LinuxService {
        // Service entities name units; the unit directories are fixed (see services.rs).
        (
            Vec::new(),
            Some(glob(&entity.path)?.compile_matcher()),
            entity.path.clone(),
        )
    } else {
        let expanded = expand_variables(&entity.path, lookup)?;
        if !expanded.starts_with('/') {
            return Err(ResolveError::NotAbsolute {
                path: entity.path.clone(),
                expanded,
            });
        }
        let segments: Vec<&str> = expanded
            .split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .collect();
        if segments.contains(&"..") {
            return Err(ResolveError::ParentSegment {
                path: entity.path.clone(),
                expanded,
            });
        }
        if let Some(first) = segments.first().filter(|s| PSEUDO_FILESYSTEMS.contains(*s)) {
            return Err(ResolveError::PseudoFilesystem {
                path: entity.path.clone(),
                fs: first.to_string(),
            });
        }
        let wildcard_at = segments.iter().position(|s| has_wildcard(s));
        let pattern = match wildcard_at {
            Some(at) if at + 1 != segments.len() => {
                return Err(ResolveError::WildcardNotLast {
                    path: entity.path.clone(),
                });
            }
            Some(_) => Some(glob(segments[segments.len() - 1])?.compile_matcher()),
            None => None,
        };
        let base_len = segments.len() - usize::from(pattern.is_some());
        let base = segments[..base_len]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        (base, pattern, format!("/{}", segments.join("/")))
    };
    let exclude = if entity.exclude.is_empty() {
        None
    } else {
        let mut set = GlobSetBuilder::new();
        for pattern in &entity.exclude {
            set.add(glob(pattern)?);
        }
        Some(set.build().map_err(|e| ResolveError::BadGlob {
            pattern: entity.exclude.join(","),
            reason: e.kind().to_string(),
        })?)
    };
    let levels = if entity.recursive {
        entity.max_depth.map_or(HARD_MAX_LEVELS, |depth| {
            depth.saturating_add(1).min(HARD_MAX_LEVELS)
        })
    } else {
        1
    };
    let fingerprint = {
        let mut identity = serde_json::json!([
            entity.entity_type,
            expanded,
            entity.recursive,
            entity.max_depth,
            entity.exclude,
            hash_algorithm
        ]);
        // What a unit's state holds grew its drop-ins: services baselined before are rebuilt
        // once, silently, rather than every unit with a drop-in reported as changed.
        if entity.entity_type == EntityType::LinuxService
            && let Some(parts) = identity.as_array_mut()
        {
            parts.push(serde_json::json!("units-with-drop-ins"));
        }
        blake3::hash(identity.to_string().as_bytes()).to_hex()[..16].to_string()
    };
    Ok(ResolvedEntity {
        name: entity.name.clone(),
        entity_type: entity.entity_type,
        path: expanded,
        base,
        pattern,
        levels,
        exclude,
        ignore_attributes: entity.ignore_attributes.clone(),
        fingerprint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/root".into()),
            "EVIL" => Some("/../..".into()),
            "REL" => Some("relative".into()),
            _ => None,
        }
    }

    fn entity(path: &str, recursive: bool, max_depth: Option<u32>) -> EntityConfig {
        EntityConfig {
            name: "e".into(),
            entity_type: EntityType::LinuxFile,
            path: path.into(),
            recursive,
            max_depth,
            exclude: vec![],
            ignore_attributes: vec![],
        }
    }

    #[test]
    fn variables_expand_in_both_spellings() {
        assert_eq!(expand_variables("$HOME/.ssh", env).unwrap(), "/root/.ssh");
        assert_eq!(expand_variables("${HOME}/.ssh", env).unwrap(), "/root/.ssh");
        assert_eq!(expand_variables("/cost$", env).unwrap(), "/cost$");
    }

    #[test]
    fn unset_variable_is_an_entity_error_naming_it() {
        let err = resolve(&entity("$NOPE/x", false, None), HashAlgorithm::Blake3, env).unwrap_err();
        assert!(err.to_string().contains("variable NOPE"), "{err}");
    }

    #[test]
    fn expansion_cannot_escape_with_parent_segments_or_relative_paths() {
        let err = resolve(&entity("$EVIL/etc", false, None), HashAlgorithm::Blake3, env).unwrap_err();
        assert!(matches!(err, ResolveError::ParentSegment { .. }), "{err}");
        let err = resolve(&entity("$REL/etc", false, None), HashAlgorithm::Blake3, env).unwrap_err();
        assert!(matches!(err, ResolveError::NotAbsolute { .. }), "{err}");
    }

    #[test]
    fn wildcard_becomes_a_pattern_on_the_parent() {
        let resolved = resolve(&entity("/etc/*.conf", false, None), HashAlgorithm::Blake3, env).unwrap();
        assert_eq!(resolved.base, vec![b"etc".to_vec()]);
        let pattern = resolved.pattern.unwrap();
        assert!(pattern.is_match("resolv.conf") && !pattern.is_match("passwd"));
    }

    #[test]
    fn depth_follows_recursive_and_max_depth() {
        let levels = |recursive, depth| {
            resolve(&entity("/srv", recursive, depth), HashAlgorithm::Blake3, env)
                .unwrap()
                .levels
        };
        assert_eq!(levels(false, None), 1);
        assert_eq!(levels(true, Some(0)), 1);
        assert_eq!(levels(true, Some(2)), 3);
        assert_eq!(levels(true, None), HARD_MAX_LEVELS);
    }

    #[test]
    fn fingerprint_changes_with_scope_and_algorithm_only() {
        let fp = |path: &str, alg| resolve(&entity(path, true, None), alg, env).unwrap().fingerprint;
        assert_eq!(
            fp("/srv", HashAlgorithm::Blake3),
            fp("//srv/./", HashAlgorithm::Blake3)
        );
        assert_ne!(
            fp("/srv", HashAlgorithm::Blake3),
            fp("/srv/app", HashAlgorithm::Blake3)
        );
        assert_ne!(
            fp("/srv", HashAlgorithm::Blake3),
            fp("/srv", HashAlgorithm::Sha256)
        );
    }

    #[test]
    fn pseudo_filesystems_are_refused() {
        for path in ["/proc/1/environ", "/sys", "/dev/*"] {
            let err = resolve(&entity(path, true, None), HashAlgorithm::Blake3, env).unwrap_err();
            assert!(
                matches!(err, ResolveError::PseudoFilesystem { .. }),
                "{path}: {err}"
            );
        }
    }

    #[test]
    fn windows_types_are_unsupported_here() {
        let mut windows = entity(r"C:\x", false, None);
        windows.entity_type = EntityType::WindowsFile;
        assert!(matches!(
            resolve(&windows, HashAlgorithm::Blake3, env),
            Err(ResolveError::Unsupported { .. })
        ));
    }
}
