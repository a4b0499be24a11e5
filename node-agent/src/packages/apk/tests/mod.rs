//! Tests of the apk database reader. This module holds what every topic shares: an installed
//! database and the builders of expected packages and errors; the tests are in the topic
//! modules below.

use super::*;
use crate::packages::mutation::{XorShift, mutate};

mod checksums;
mod database;
mod errors;
mod hostile;
mod limits;

/// An installed database as apk-tools 2 writes it: package fields apk uses and this parser skips
/// (C, S, I, T, U, L, o, m with UTF-8, t, c, p, D, r), a symlink (libc.musl, whose checksum is the
/// SHA-1 of its target `ld-musl-x86_64.so.1`), files with and without `a` and `Z` lines, an `a`
/// line with an extended-attribute checksum, directories with `M` lines and none, the root
/// directory (`F:` empty), a directory and a file name that are not UTF-8, a package without
/// architecture and one without files. The checksums are the SHA-1s of contents made up for the
/// test (python3 hashlib). Line numbers used below: the packages start on lines 1, 23, 49, 62
/// and 68; musl's first file is on line 16; busybox's `dad` on line 43.
const INSTALLED: &[u8] = b"\
C:Q1P4IRvUlgtkFDavpb6n4uYuLW0Wg=
P:musl
V:1.2.4-r2
A:x86_64
S:383152
I:622592
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Ter\xc3\xa4s <timo.teras@iki.fi>
t:1698692389
c:f93af038c3de7146121c2ea8124ba5ce29b4b058
p:so:libc.musl-x86_64.so.1=1
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755
Z:Q1NjxkJI1PGm/3CJL9dYlgk4/xhKk=
R:libc.musl-x86_64.so.1
a:0:0:777
Z:Q17yJ3JFNypA4mxhJJr0ou6CzsJVI=

C:Q1u2H8jGZ5f3mQ4w1T9p0x4y5Z6a7=
P:busybox
V:1.36.1-r15
A:x86_64
D:so:libc.musl-x86_64.so.1
r:busybox-initscripts
f:f
F:bin
R:busybox
a:0:0:755
Z:Q1hhw9wigFQ+8dvEY+wN/DCm/mC18=
F:etc
R:securetty
Z:Q1C6YlkXqwaNCm6VZ7tuHu0FUC5Js=
F:etc/logrotate.d
R:acpid
Z:Q1cxnXLi1c0HxTohMkRFSVUQ3htqA=
F:etc/network
M:0:0:755
F:etc/network/if-up.d
R:dad
a:0:0:775:Q1I6baM2BOCrNII+0ChUFIzf6OONI=
Z:Q1I6baM2BOCrNII+0ChUFIzf6OONI=
F:var/cache/misc
M:0:0:2755

C:Q1dGhpcyBpcyBub3QgYSByZWFsIHN1bQ==
P:alpine-baselayout-data
V:3.6.5-r0
A:x86_64
F:
R:root-file
Z:Q1Z6qSZ2coXY/thacA7hF1XB2C+po=
F:etc
R:fstab
a:0:0:644
Z:Q1wJvrC66Ukshar9lVwtCWsoHjaVU=
R:no-checksum

P:caf\xc3\xa9-docs
V:1.0-r0
F:usr/share/caf\xe9
R:na\xefve.txt
Z:Q1b68WYULm+kYOhYQfOYZoH5G9CsI=

P:build-base
V:0.5-r3
A:x86_64

";

/// The SHA-1 of the empty string, and its `Z` value.
const EMPTY_SHA1: &str = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
const EMPTY_CHECKSUM: &str = "Q12jmj7l5rSw0yVb/vlWAYkK/YBwk=";

fn sha1(hex: &str) -> [u8; 20] {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

fn file(path: &[u8], sha1_hex: Option<&str>, mode: Option<u32>) -> ApkFile {
    ApkFile {
        path: path.to_vec(),
        sha1: sha1_hex.map(sha1),
        mode,
    }
}

fn package(name: &str, version: &str, arch: Option<&str>, files: Vec<ApkFile>, dirs: &[&[u8]]) -> ApkPackage {
    ApkPackage {
        name: name.to_string(),
        version: version.to_string(),
        arch: arch.map(str::to_string),
        files,
        dirs: dirs.iter().map(|dir| dir.to_vec()).collect(),
    }
}

fn parse(bytes: &[u8]) -> Result<Vec<ApkPackage>, ApkError> {
    parse_installed(bytes, &Limits::default())
}

/// Package `p`, version 1 (lines 1 and 2), then `lines`.
fn one_package(lines: &str) -> Result<Vec<ApkPackage>, ApkError> {
    parse(format!("P:p\nV:1\n{lines}").as_bytes())
}

/// The error for `/etc/passwd` of package `p` having the `Z` value `value` (on line 5).
fn bad_checksum(value: &str) -> ApkError {
    ApkError::BadChecksum {
        line: 5,
        package: "p".to_string(),
        path: "/etc/passwd".to_string(),
        value: value.to_string(),
    }
}

fn bad_path(line: usize, value: &str, reason: &'static str) -> ApkError {
    ApkError::BadPath {
        line,
        package: "p".to_string(),
        value: value.to_string(),
        reason,
    }
}

const BAD_DIRECTORY: &str = "a directory is relative to / and made of names other than . and ..";
const BAD_FILE_NAME: &str = "a file name is one path component other than . and ..";

/// The bytes `mutate` writes: line ends, the `:` after a field letter, path characters, field
/// letters, the `Q1` of a checksum, and bytes no database should hold.
const INTERESTING: &[u8] = b"\n\n:/.=Q1Z\0\r\xffRFa";
