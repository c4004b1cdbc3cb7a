use super::*;
use crate::backup::testutil::TempDir;

#[test]
fn utc_calendar() {
    assert_eq!(utc(0), (1970, 1, 1, 0, 0, 0));
    assert_eq!(utc(1_736_346_600), (2025, 1, 8, 14, 30, 0));
    assert_eq!(utc(951_782_400), (2000, 2, 29, 0, 0, 0));
    assert_eq!(utc(4_107_542_399), (2100, 2, 28, 23, 59, 59));
    assert_eq!(rfc3339(1_736_346_659), "2025-01-08T14:30:59Z");
    assert_eq!(compact_stamp(1_736_346_659), "20250108143059");
}

#[test]
fn archive_names_round_trip() {
    let t = 1_736_346_600;
    assert_eq!(
        archive_file_name("3node0", t, 1),
        "3node0-keys-20250108-1430.tar.gz"
    );
    assert_eq!(
        archive_file_name("3node0", t, 2),
        "3node0-keys-20250108-1430-2.tar.gz"
    );
    for (name, parsed) in [
        ("3node0-keys-20250108-1430.tar.gz", Some(("3node0", 1))),
        ("3node0-keys-20250108-1430-12.tar.gz", Some(("3node0", 12))),
        ("a-keys-b-keys-20250108-1430.tar.gz", Some(("a-keys-b", 1))),
        (
            "x-keys-20250108-1430-keys-20250109-0900.tar.gz",
            Some(("x-keys-20250108-1430", 1)),
        ),
        ("3node0-keys-20250108.tar.gz", None),
        ("3node0-keys-20250108-1430-01.tar.gz", None),
        ("3node0-keys-20250108-1430-1.tar.gz", None),
        ("-keys-20250108-1430.tar.gz", None),
        ("3node0-keys-20250108-1430.tar", None),
        ("mybackup.tar.gz", None),
    ] {
        let got = parse_archive_name(name);
        assert_eq!(
            got.as_ref().map(|n| (n.container.as_str(), n.seq)),
            parsed,
            "{name}"
        );
    }
}

#[test]
fn backup_names_from_operators() {
    assert!(check_backup_name("3node0-keys-20250108-1430.tar.gz").is_ok());
    for bad in [
        "",
        "../x.tar.gz",
        "a/b.tar.gz",
        "a\\b.tar.gz",
        ".hidden.tar.gz",
        "x..tar.gz",
        "x.zip",
        ".tar.gz",
        "a\nb.tar.gz",
    ] {
        assert!(check_backup_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn sha256_file_format() {
    let digest = sha256_hex(b"abc");
    assert_eq!(
        digest,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let line = sha256_line(&digest, "n0-keys-20250108-1430.tar.gz");
    assert_eq!(
        line,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  \
         n0-keys-20250108-1430.tar.gz\n"
    );
    assert_eq!(
        parse_sha256_file(&line, "n0-keys-20250108-1430.tar.gz"),
        Ok(digest.clone())
    );
    let binary = format!("{}  *x.tar.gz\n", digest.to_uppercase()).replace("  *", " *");
    assert_eq!(parse_sha256_file(&binary, "x.tar.gz"), Ok(digest.clone()));
    assert!(parse_sha256_file(&line, "other.tar.gz").is_err());
    assert!(parse_sha256_file("abc  x.tar.gz\n", "x.tar.gz").is_err());
    assert!(parse_sha256_file(&format!("{line}{line}"), "n0-keys-20250108-1430.tar.gz").is_err());
}

fn touch_archive(dir: &Path, name: &str) {
    fs::write(dir.join(name), b"x").unwrap();
    fs::write(dir.join(format!("{name}.sha256")), b"y").unwrap();
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn retention_keeps_exactly_n_and_never_the_new_one() {
    let temp = TempDir::new("store-retention");
    let dir = temp.path();
    for name in [
        "n1-keys-20250101-0000.tar.gz",
        "n1-keys-20250102-0000.tar.gz",
        "n1-keys-20250102-0000-2.tar.gz",
        "n1-keys-20250103-0900.tar.gz",
        // A clock set in the future once: newer by name than the one just written.
        "n1-keys-20990101-0000.tar.gz",
        // Other containers and other files are never touched.
        "n10-keys-20240101-0000.tar.gz",
        "n1-keys-notes.txt",
    ] {
        touch_archive(dir, name);
    }
    let new = "n1-keys-20250104-0000.tar.gz";
    touch_archive(dir, new);
    let (deleted, failures) = prune(dir, "n1", 3, new);
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(
        deleted,
        [
            "n1-keys-20250102-0000-2.tar.gz",
            "n1-keys-20250102-0000.tar.gz",
            "n1-keys-20250101-0000.tar.gz",
        ]
    );
    assert_eq!(
        listing(dir),
        [
            "n1-keys-20250103-0900.tar.gz",
            "n1-keys-20250103-0900.tar.gz.sha256",
            "n1-keys-20250104-0000.tar.gz",
            "n1-keys-20250104-0000.tar.gz.sha256",
            "n1-keys-20990101-0000.tar.gz",
            "n1-keys-20990101-0000.tar.gz.sha256",
            "n1-keys-notes.txt",
            "n1-keys-notes.txt.sha256",
            "n10-keys-20240101-0000.tar.gz",
            "n10-keys-20240101-0000.tar.gz.sha256",
        ]
    );
    // keep = 1 (or 0) leaves only the new one.
    let (deleted, _) = prune(dir, "n1", 0, new);
    assert_eq!(deleted.len(), 2);
    assert!(dir.join(new).exists());
}

fn tree(root: &Path) {
    fs::create_dir_all(root.join("keystore")).unwrap();
    fs::create_dir_all(root.join("network")).unwrap();
    fs::write(root.join("keystore/6772616e01"), b"\"secret\"").unwrap();
    fs::write(root.join("network/secret_ed25519"), [1u8; 32]).unwrap();
}

fn origin(container: &str) -> Origin {
    Origin {
        container: container.to_owned(),
        chain_id: "creditcoin3".to_owned(),
        ..Origin::default()
    }
}

#[test]
fn publishing_names_atomically_with_collision_suffix() {
    let temp = TempDir::new("store-publish");
    let dir = temp.path().join("backups");
    prepare_dir(&dir).unwrap();
    let src = temp.path().join("src");
    tree(&src);
    let t = 1_736_346_600;
    let first = publish_archive(&dir, &origin("n0"), &src, t, None).unwrap();
    let second = publish_archive(&dir, &origin("n0"), &src, t + 30, None).unwrap();
    let third = publish_archive(&dir, &origin("n0"), &src, t + 59, None).unwrap();
    assert_eq!(first.file_name, "n0-keys-20250108-1430.tar.gz");
    assert_eq!(second.file_name, "n0-keys-20250108-1430-2.tar.gz");
    assert_eq!(third.file_name, "n0-keys-20250108-1430-3.tar.gz");
    for published in [&first, &second, &third] {
        let bytes = fs::read(&published.path).unwrap();
        assert_eq!(bytes.len() as u64, published.bytes);
        assert_eq!(sha256_hex(&bytes), published.sha256);
        assert_eq!(
            check_checksum(&dir, &published.file_name, &bytes),
            Ok(published.sha256.clone())
        );
        let mode = fs::metadata(&published.path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let sha_text = fs::read_to_string(dir.join("n0-keys-20250108-1430.tar.gz.sha256")).unwrap();
    assert_eq!(
        sha_text,
        format!("{}  n0-keys-20250108-1430.tar.gz\n", first.sha256)
    );
    // Only archives and checksums: no temp file left.
    assert_eq!(listing(&dir).len(), 6, "{:?}", listing(&dir));
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

/// Bytes that do not compress (xorshift), so an archive of them is as large.
pub(crate) fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A writer that fails after `limit` bytes, as a full disk does.
struct FailAfter {
    inner: File,
    limit: usize,
    written: usize,
    panic: bool,
}

impl Write for FailAfter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() > self.limit {
            if self.panic {
                // Once: the encoders' destructors write again while unwinding, and
                // a second panic there would abort the test process.
                self.panic = false;
                panic!("injected panic while writing the archive");
            }
            return Err(io::Error::from_raw_os_error(28));
        }
        self.written += buf.len();
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub(crate) fn failing_writer(limit: usize, panic: bool) -> Box<WrapWriter> {
    Box::new(move |file| {
        Box::new(FailAfter {
            inner: file,
            limit,
            written: 0,
            panic,
        })
    })
}

#[test]
fn failing_midway_leaves_no_partial_file() {
    let temp = TempDir::new("store-enospc");
    let dir = temp.path().join("backups");
    prepare_dir(&dir).unwrap();
    let src = temp.path().join("src");
    tree(&src);
    // Big enough that the gzip stream spills past the buffer mid-way.
    fs::write(src.join("keystore/big"), noise(200_000)).unwrap();
    let wrap = failing_writer(10_000, false);
    let cause = publish_archive(&dir, &origin("n0"), &src, 0, Some(&*wrap)).unwrap_err();
    match &cause {
        Cause::Io { kind, .. } => assert_eq!(*kind, io::ErrorKind::StorageFull),
        other => panic!("{other:?}"),
    }
    assert!(cause.to_string().contains("disk is full"), "{cause}");
    assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));

    let wrap = failing_writer(10_000, true);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        publish_archive(&dir, &origin("n0"), &src, 0, Some(&*wrap))
    }));
    assert!(result.is_err());
    assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));
}

#[test]
fn reading_refuses_links_and_wrong_checksums() {
    let temp = TempDir::new("store-read");
    let dir = temp.path();
    fs::write(dir.join("real.tar.gz"), b"data").unwrap();
    std::os::unix::fs::symlink(dir.join("real.tar.gz"), dir.join("link.tar.gz")).unwrap();
    assert!(matches!(
        read_backup(dir, "link.tar.gz"),
        Err(ReadError::NotRegular(_))
    ));
    assert!(matches!(
        read_backup(dir, "none.tar.gz"),
        Err(ReadError::NotFound)
    ));
    fs::create_dir(dir.join("d.tar.gz")).unwrap();
    assert!(matches!(
        read_backup(dir, "d.tar.gz"),
        Err(ReadError::NotRegular(_))
    ));
    let bytes = read_backup(dir, "real.tar.gz").unwrap();
    assert!(
        check_checksum(dir, "real.tar.gz", &bytes)
            .unwrap_err()
            .contains("missing")
    );
    fs::write(
        dir.join("real.tar.gz.sha256"),
        sha256_line(&sha256_hex(b"other"), "real.tar.gz"),
    )
    .unwrap();
    assert!(
        check_checksum(dir, "real.tar.gz", &bytes)
            .unwrap_err()
            .contains("damaged")
    );
    fs::write(
        dir.join("real.tar.gz.sha256"),
        sha256_line(&sha256_hex(b"data"), "real.tar.gz"),
    )
    .unwrap();
    assert!(check_checksum(dir, "real.tar.gz", &bytes).is_ok());
}

#[test]
fn stale_temps_of_other_processes_are_removed() {
    let temp = TempDir::new("store-stale");
    let dir = temp.path();
    fs::create_dir(dir.join(".warden-tmp-999999999-0-backup")).unwrap();
    fs::write(dir.join(".warden-tmp-999999999-1-archive.tar.gz"), b"x").unwrap();
    let own = Scratch::new(dir, "mine").unwrap();
    assert_eq!(remove_stale_temps(dir), 2);
    assert!(own.path().exists());
    let path = own.path().to_path_buf();
    drop(own);
    assert!(!path.exists());
}

#[test]
fn a_backup_dir_is_made_private_and_another_users_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let temp = TempDir::new("store-owner");
    let dir = temp.path().join("backups");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    prepare_dir(&dir).unwrap();
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    // Another user's directory (only root can make one to test with).
    if rustix::process::getuid().is_root() {
        let theirs = temp.path().join("theirs");
        fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(4242), Some(4242)).unwrap();
        let error = prepare_dir(&theirs).unwrap_err();
        assert!(error.to_string().contains("uid 4242"), "{error}");
    }
}
