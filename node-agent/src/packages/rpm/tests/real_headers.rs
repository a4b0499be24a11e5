//! Real headers: the kfdemo package's header and every package of a real rpmdb.sqlite.

use super::*;

#[test]
fn parses_the_real_kfdemo_header() {
    // python3 rpmhdr.py --blob blob-1.0.bin
    let package: RpmPackage = parse(KFDEMO).unwrap();
    assert_eq!(package.name, "kfdemo");
    assert_eq!(package.epoch, None);
    assert_eq!(package.version, "1.0");
    assert_eq!(package.release, "1");
    assert_eq!(package.evr(), "1.0-1");
    assert_eq!(package.arch.as_deref(), Some("noarch"));
    assert_eq!(package.install_time, Some(1_795_615_972));
    assert_eq!(package.install_tid, Some(1_795_615_972));
    assert_eq!(
        package.sha256_header.as_deref(),
        Some("04cfc50c529c814677853dba89fbfdbb5a56a3a1b86751044813d9df5be7512b")
    );
    assert_eq!(package.digest_algorithm, DigestAlgorithm::Sha256);
    let expected: Vec<RpmFile> = vec![
        file(
            "/etc/kfdemo.conf",
            Some("fabd481de0eada87620bcb1432a4284ad681598987b8511ed3df2153285d6441"),
            0o100644,
            0x11,
            None,
            12,
        ),
        file("/etc/kfdemo.d", None, 0o40755, 0, None, 0),
        file(
            "/usr/bin/kfdemo",
            Some("e0f9d1321b926f50b034d3c838f8c09a307807dee313aca8578be93b29f3102e"),
            0o100755,
            0,
            None,
            26,
        ),
        file("/usr/bin/kfdemo-link", None, 0o120777, 0, Some("kfdemo"), 6),
        file("/var/log/kfdemo.log", None, 0o100644, 0x40, None, 0),
    ];
    assert_eq!(package.files, expected);
}

#[test]
fn parses_every_package_of_a_database() {
    // python3 rpmhdr.py --raw tests/fixtures/rpm/rpmdb.sqlite
    let db = Database::open(RPMDB, None, Limits::default()).unwrap();
    let results: Vec<PackageResult> = packages(&db, 1_000).unwrap();
    assert_eq!(results.len(), 5);
    assert_eq!(results[0], Ok(parse(KFDEMO).unwrap()));

    let upgraded: &RpmPackage = results[1].as_ref().unwrap();
    assert_eq!(upgraded.evr(), "1:1.1-1");
    assert_eq!(upgraded.epoch, Some(1));
    assert_eq!(upgraded.install_time, Some(1_795_616_149));
    assert_eq!(upgraded.digest_algorithm, DigestAlgorithm::Sha256);
    assert_eq!(upgraded.files.len(), 5);
    assert_eq!(
        upgraded.files[0].digest,
        Some(hex(
            "04ae5d8052e9a77fb6f1ef7601d01fb6e8fe85ba4f9ad610404ce1ea3379b275"
        ))
    );
    assert_eq!(
        upgraded.files[2].digest,
        Some(hex(
            "021652e01519a72c80786321cf234c10480b70eae8816ea15410e340199beea6"
        ))
    );

    // Built with MD5 file digests: rpmbuild then writes no FILEDIGESTALGO at all.
    let md5: &RpmPackage = results[2].as_ref().unwrap();
    assert_eq!(md5.evr(), "1.0-1");
    assert_eq!(md5.install_time, Some(1_795_616_342));
    assert_eq!(md5.digest_algorithm, DigestAlgorithm::Md5);
    let paths: Vec<&[u8]> = md5.files.iter().map(|f| f.path.as_slice()).collect();
    let expected_paths: [&[u8]; 5] = [
        b"/etc/kfdemo.conf",
        b"/etc/kfdemo.d",
        b"/usr/bin/kfdemo",
        b"/usr/bin/kfdemo-link",
        b"/var/log/kfdemo.log",
    ];
    assert_eq!(paths, expected_paths.to_vec());
    assert_eq!(md5.files[0].digest, Some(hex("ac593c483ad4e2efab00a86b2d466b46")));
    assert_eq!(md5.files[2].digest, Some(hex("de44afba8eb8173c980cac737a1501f1")));

    assert_eq!(
        results[3],
        Err((4, RpmError::BadDataLength { dl: 1_734_439_522 }))
    );
    assert_eq!(results[4], Err((5, RpmError::NotABlob)));
}
