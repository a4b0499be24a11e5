//! Changes to files' attributes made with the real tools (setcap, setfattr, setfacl, chattr),
//! shared by the one-shot, realtime and AIDE tests: each says what kubefim must call it and
//! what the decoded state after it must show.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use kubefim_crds::{FileState, filechange::ChangedAttribute as A};

/// Runs a tool and asserts it succeeded.
pub fn tool(program: &str, args: &[&str], path: &Path) {
    let output = Command::new(program)
        .args(args)
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program}: {e} (scripts/test.sh installs attr, acl, libcap2-bin, e2fsprogs)")
        });
    assert!(
        output.status.success(),
        "{program} {args:?} {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

pub struct Mutation {
    /// The file (or directory) changed, under the monitored directory.
    pub file: &'static str,
    pub program: &'static str,
    pub args: &'static [&'static str],
    /// The attribute kind kubefim must report, and no other of the five.
    pub changed: A,
    /// What the state after it must show, as an error when it does not.
    pub shows: fn(&FileState) -> Result<(), String>,
}

/// The attribute kinds a mutation here may change; a report of one it did not is a failure.
pub const KINDS: [A; 5] = [A::Capabilities, A::Xattrs, A::Acl, A::Selinux, A::Flags];

fn expect(what: &str, found: Option<&str>, wanted: &str) -> Result<(), String> {
    match found {
        Some(found) if found.contains(wanted) => Ok(()),
        other => Err(format!("{what}: {other:?}, expected {wanted:?}")),
    }
}

pub fn mutations() -> Vec<Mutation> {
    vec![
        Mutation {
            file: "tool",
            program: "setcap",
            args: &["cap_setuid+ep"],
            changed: A::Capabilities,
            shows: |s| expect("capabilities", s.capabilities.as_deref(), "cap_setuid+ep"),
        },
        Mutation {
            file: "noted",
            program: "setfattr",
            args: &["-n", "user.origin", "-v", "rewritten"],
            changed: A::Xattrs,
            shows: |s| {
                let names: Vec<&str> = s.xattrs.iter().map(|x| x.name.as_str()).collect();
                expect("xattrs", Some(&names.join(",")), "user.origin")
            },
        },
        Mutation {
            file: "fresh",
            program: "setfattr",
            args: &["-n", "user.added", "-v", "x"],
            changed: A::Xattrs,
            shows: |s| {
                let names: Vec<&str> = s.xattrs.iter().map(|x| x.name.as_str()).collect();
                expect("xattrs", Some(&names.join(",")), "user.added")
            },
        },
        Mutation {
            file: "stripped",
            program: "setfattr",
            args: &["-x", "user.gone"],
            changed: A::Xattrs,
            shows: |s| match s.xattrs.iter().any(|x| x.name == "user.gone") {
                false => Ok(()),
                true => Err(format!("user.gone still listed: {:?}", s.xattrs)),
            },
        },
        Mutation {
            file: "labeled",
            program: "setfattr",
            args: &["-n", "security.selinux", "-v", "system_u:object_r:shadow_t:s0"],
            changed: A::Selinux,
            shows: |s| expect("selinux", s.selinux.as_deref(), "system_u:object_r:shadow_t:s0"),
        },
        Mutation {
            file: "signed",
            program: "setfattr",
            args: &[
                "-n",
                "security.ima",
                "-v",
                "0x0404aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            ],
            changed: A::Xattrs,
            shows: |s| {
                let ima = s.xattrs.iter().find(|x| x.name == "security.ima");
                expect(
                    "security.ima",
                    ima.and_then(|x| x.decoded.as_deref()),
                    "digest sha256:aaaaaaaa",
                )
            },
        },
        Mutation {
            file: "shared",
            program: "setfacl",
            args: &["-m", "u:1234:rw"],
            changed: A::Acl,
            shows: |s| expect("acl", s.acl.as_deref(), "user:1234:rw-"),
        },
        Mutation {
            file: "inherits",
            program: "setfacl",
            args: &["-d", "-m", "u:1234:rx"],
            changed: A::Acl,
            shows: |s| expect("defaultAcl", s.default_acl.as_deref(), "user:1234:r-x"),
        },
        Mutation {
            file: "locked",
            program: "chattr",
            args: &["+i"],
            changed: A::Flags,
            shows: |s| expect("flags", Some(&s.flags.join(",")), "immutable"),
        },
        Mutation {
            file: "journal",
            program: "chattr",
            args: &["+a"],
            changed: A::Flags,
            shows: |s| expect("flags", Some(&s.flags.join(",")), "append"),
        },
    ]
}

/// The files the mutations change, in `dir`, as they are before: `tool` a copy of a real
/// binary, `noted` and `stripped` with a user xattr already, `inherits` a directory.
pub fn prepare(dir: &Path) -> Unlock {
    fs::create_dir_all(dir).unwrap();
    for mutation in mutations() {
        let path = dir.join(mutation.file);
        match mutation.file {
            "tool" => {
                fs::copy("/usr/bin/true", &path).unwrap();
            }
            "inherits" => fs::create_dir(&path).unwrap(),
            name => fs::write(&path, format!("{name}\n")).unwrap(),
        }
    }
    tool("setfattr", &["-n", "user.origin", "-v", "v1"], &dir.join("noted"));
    tool(
        "setfattr",
        &["-n", "user.gone", "-v", "soon"],
        &dir.join("stripped"),
    );
    Unlock(dir.to_path_buf())
}

/// Applies every mutation to the files in `dir`.
pub fn apply(dir: &Path) {
    for mutation in mutations() {
        tool(mutation.program, mutation.args, &dir.join(mutation.file));
    }
}

/// Clears the immutable and append-only flags under a directory when dropped, so that it
/// can be removed.
pub struct Unlock(pub PathBuf);

impl Drop for Unlock {
    fn drop(&mut self) {
        let _ = Command::new("chattr")
            .args(["-R", "-i", "-a"])
            .arg(&self.0)
            .status();
    }
}

/// Whether a reported change of `mutation` is right: the attribute kind it made and no
/// other, and the state after it showing what it set. The error says what is wrong.
pub fn judge(mutation: &Mutation, changed: &[A], current: Option<&FileState>) -> Result<(), String> {
    let kinds: Vec<A> = changed.iter().copied().filter(|a| KINDS.contains(a)).collect();
    if kinds != [mutation.changed] {
        return Err(format!(
            "{} ({} {:?}): changed {changed:?}, expected {:?} among the attribute kinds",
            mutation.file, mutation.program, mutation.args, mutation.changed
        ));
    }
    let current = current.ok_or_else(|| format!("{}: no current state", mutation.file))?;
    (mutation.shows)(current).map_err(|e| format!("{}: {e}", mutation.file))
}
