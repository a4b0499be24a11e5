//! Tests of the dpkg database reader. This module holds what every topic shares: a status
//! file, the journal files, and the builders of expected entries; the tests are in the topic
//! modules below.

use std::collections::HashSet;

use super::*;
use crate::packages::mutation::{XorShift, mutate};

mod hostile;
mod info_files;
mod journal;
mod status_errors;
mod status_file;

/// A status file as dpkg 1.21 writes it (long fields trimmed), with the cases that matter: an
/// `all` package, libc6 installed for two architectures (Multi-Arch: same), a conffile digest in
/// upper case, an unpacked package whose new conffile has no digest yet, a config-files entry
/// with obsolete conffiles (one with spaces in its path), a not-installed selection (dropped) and
/// a half-installed package. Line numbers used below: libc6:amd64 starts on line 20, its conffile
/// is on line 32, libc6:i386 starts on line 38.
const STATUS: &str = "\
Package: adduser
Status: install ok installed
Priority: important
Section: admin
Installed-Size: 686
Maintainer: Debian Adduser Developers <adduser@packages.debian.org>
Architecture: all
Multi-Arch: foreign
Version: 3.134
Depends: passwd
Conffiles:
 /etc/adduser.conf cc3493ecd2d09837ffdcc3e25fdfff18
 /etc/deluser.conf 11a06baf8245fd8d690b99024d228c1f
Description: add and remove users and groups
 This package includes the 'adduser' and 'deluser' commands for creating
 and removing users.
 .
 Adding users with 'adduser' is much easier than adding them manually.

Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 13001
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u14
Depends: libgcc-s1
Conffiles:
 /etc/ld.so.conf.d/x86_64-linux-gnu.conf d4e7a7b88a71b5ffd9e2644e71a0cfab
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.
Homepage: https://www.gnu.org/software/libc/libc.html

Package: libc6
Status: install ok installed
Architecture: i386
Multi-Arch: same
Version: 2.36-9+deb12u14
Conffiles:
 /etc/ld.so.conf.d/i386-linux-gnu.conf 0123456789abcdef0123456789ABCDEF
Description: GNU C Library: Shared libraries

Package: pkgconf
Status: install ok unpacked
Architecture: amd64
Multi-Arch: foreign
Version: 1.8.1-1
Conffiles:
 /etc/dpkg/dpkg.cfg.d/pkgconf-hook-config newconffile remove-on-upgrade
Description: manage compile and link flags for libraries

Package: ntp
Status: deinstall ok config-files
Architecture: amd64
Version: 1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1
Conffiles:
 /etc/ntp.conf 7b2a1ddea3b0f5a5bf1c3a7d7b2c5b1e
 /etc/init.d/ntp 1f0b7e5e4d2f0a9c8b7a6d5e4f3a2b1c obsolete
 /etc/ntp dir/with space.conf 00112233445566778899aabbccddeeff obsolete remove-on-upgrade
Description: Network Time Protocol daemon
 (transitional)

Package: oldpkg
Status: purge ok not-installed
Architecture: amd64

Package: broken
Status: install reinstreq half-installed
Architecture: amd64
Version: 1.0
";

fn md5(hex: &str) -> [u8; 16] {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

fn conffile(path: &str, md5_hex: Option<&str>, obsolete: bool) -> Conffile {
    Conffile {
        path: path.as_bytes().to_vec(),
        md5: md5_hex.map(md5),
        obsolete,
    }
}

fn entry(
    package: &str,
    architecture: Option<&str>,
    multi_arch_same: bool,
    version: Option<&str>,
    want: &str,
    state: &str,
    conffiles: Vec<Conffile>,
) -> StatusEntry {
    StatusEntry {
        package: package.to_string(),
        architecture: architecture.map(str::to_string),
        multi_arch_same,
        version: version.map(str::to_string),
        want: want.to_string(),
        state: state.to_string(),
        conffiles,
    }
}

fn status(text: &str) -> Result<Vec<StatusEntry>, DpkgError> {
    parse_status(text.as_bytes(), &Limits::default())
}

/// One package in the given state, for tests about a single field.
fn one_package(fields: &str) -> Result<Vec<StatusEntry>, DpkgError> {
    status(&format!("Package: p\nStatus: install ok installed\n{fields}"))
}

/// The error for package `p` whose Conffiles lines are `text`, starting on line 4.
fn conffile_error(text: &str) -> DpkgError {
    one_package(&format!("Conffiles:\n{text}\n")).unwrap_err()
}

fn bad_conffile(text: &str, reason: &'static str) -> DpkgError {
    DpkgError::BadConffile {
        line: 4,
        package: "p".to_string(),
        text: text.to_string(),
        reason,
    }
}

fn small_limits() -> Limits {
    Limits {
        max_entries: 8,
        max_field_bytes: 4096,
        max_lines: 64,
        max_path_bytes: 256,
    }
}

/// The bytes `mutate` writes: blanks and line ends (continuation lines, paragraph ends), the `:`
/// after a field name, path and version characters, and bytes no status file should hold.
const INTERESTING: &[u8] = b" \t\n\n:/.\0\r\xff0aZ-";

// ---- the journal --------------------------------------------------------------------------

/// `updates/0002`: a package being unpacked.
const UPDATE_0002: &str =
    "Package: newpkg\nStatus: install ok half-installed\nArchitecture: amd64\nVersion: 1.0\n";
/// `updates/0010`: the package installed, adduser purged.
const UPDATE_0010: &str = "Package: newpkg\nStatus: install ok installed\n\
                           Architecture: amd64\nVersion: 1.0\n\n\
                           Package: adduser\nStatus: purge ok not-installed\nArchitecture: all\n";
