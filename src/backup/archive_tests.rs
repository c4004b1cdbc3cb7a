use super::*;
use crate::backup::testutil::TempDir;

fn origin() -> Origin {
    Origin {
        container: "3node0".to_owned(),
        chain_id: "creditcoin3".to_owned(),
        ..Origin::default()
    }
}

fn sample_tree(root: &Path) {
    let keystore = root.join("keystore");
    fs::create_dir_all(keystore.join("sub")).unwrap();
    fs::create_dir_all(root.join("network")).unwrap();
    fs::write(keystore.join("6772616eaa"), b"\"seed one\"").unwrap();
    fs::write(keystore.join("62616265bb"), b"\"seed two\"").unwrap();
    fs::write(keystore.join("sub/deep"), vec![7u8; 3000]).unwrap();
    fs::write(keystore.join("empty"), b"").unwrap();
    fs::write(root.join("network/secret_ed25519"), [9u8; 32]).unwrap();
}

fn archive_of(root: &Path) -> Vec<u8> {
    let entries = scan_tree(root).unwrap();
    write_archive(root, &entries, &origin(), 1_736_346_600, Vec::new()).unwrap()
}

#[test]
fn layout_and_byte_for_byte_round_trip() {
    let temp = TempDir::new("archive-round-trip");
    let source = temp.path().join("src");
    sample_tree(&source);
    let bytes = archive_of(&source);

    let archive = read_archive(&bytes).unwrap();
    assert_eq!(
        archive.names(),
        [
            "keystore/",
            "keystore/62616265bb",
            "keystore/6772616eaa",
            "keystore/empty",
            "keystore/sub/",
            "keystore/sub/deep",
            "network/",
            "network/secret_ed25519",
        ]
    );
    assert_eq!(archive.origin, Some(origin()));
    assert_eq!(archive.top_dirs(), ["keystore", "network"]);

    // Headers: relative names, fixed modes, owner 0, the backup's mtime.
    let mut raw = tar::Archive::new(GzDecoder::new(&bytes[..]));
    for item in raw.entries().unwrap() {
        let item = item.unwrap();
        let header = item.header();
        let mode = header.mode().unwrap();
        match header.entry_type() {
            EntryType::Directory => assert_eq!(mode, 0o700),
            EntryType::Regular => assert_eq!(mode, 0o600),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
        assert_eq!(header.mtime().unwrap(), 1_736_346_600);
        assert!(!item.path_bytes().starts_with(b"/"));
    }

    let out = temp.path().join("out");
    fs::create_dir(&out).unwrap();
    archive.extract_to(&out).unwrap();
    let entries = scan_tree(&source).unwrap();
    let contents = read_contents(&source, &entries).unwrap();
    assert_eq!(
        compare_tree(&out, &entries, &contents, &TOP_DIRS, true).unwrap(),
        None
    );
    assert_eq!(
        fs::read(out.join("keystore/sub/deep")).unwrap(),
        vec![7u8; 3000]
    );
    // The same tree archives to the same bytes.
    assert_eq!(archive_of(&source), bytes);
}

#[test]
fn long_names_survive() {
    let temp = TempDir::new("archive-long");
    let source = temp.path().join("src");
    fs::create_dir_all(source.join("keystore")).unwrap();
    let name = format!("65636473{}", "ab".repeat(100));
    fs::write(source.join("keystore").join(&name), b"x").unwrap();
    let archive = read_archive(&archive_of(&source)).unwrap();
    assert_eq!(archive.names()[1], format!("keystore/{name}"));
}

#[test]
fn trees_with_links_are_not_archived() {
    let temp = TempDir::new("archive-symlink");
    let source = temp.path().join("src");
    fs::create_dir_all(source.join("keystore")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", source.join("keystore/x")).unwrap();
    match scan_tree(&source) {
        Err(TreeError::Unsupported(problem)) => {
            assert!(problem.contains("symbolic link"), "{problem}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn compare_notices_differences() {
    let temp = TempDir::new("archive-compare");
    let source = temp.path().join("src");
    sample_tree(&source);
    let entries = scan_tree(&source).unwrap();
    let contents = read_contents(&source, &entries).unwrap();
    fs::write(source.join("keystore/6772616eaa"), b"changed").unwrap();
    let found = compare_tree(&source, &entries, &contents, &["keystore"], false).unwrap();
    assert!(found.unwrap().contains("differs"));
    fs::write(source.join("keystore/new"), b"").unwrap();
    let found = compare_tree(&source, &entries, &contents, &["keystore"], false).unwrap();
    assert!(found.unwrap().contains("unexpected"));
    // Modes: the sample tree was written with the umask's modes.
    fs::remove_file(source.join("keystore/new")).unwrap();
    fs::write(source.join("keystore/6772616eaa"), b"\"seed one\"").unwrap();
    assert_eq!(
        compare_tree(&source, &entries, &contents, &["network"], false).unwrap(),
        None
    );
    assert!(
        compare_tree(&source, &entries, &contents, &["network"], true)
            .unwrap()
            .unwrap()
            .contains("mode")
    );
}

/// Builds a gzip-compressed tar from raw headers, as an attacker would.
/// One raw entry: name bytes, type, content, link target.
pub(crate) type RawEntry<'a> = (&'a [u8], EntryType, &'a [u8], Option<&'a [u8]>);

pub(crate) fn crafted(entries: &[RawEntry]) -> Vec<u8> {
    let mut builder = Builder::new(GzBuilder::new().write(Vec::new(), Compression::fast()));
    for (name, entry_type, data, link) in entries {
        let mut header = Header::new_gnu();
        {
            let gnu = header.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name);
            if let Some(link) = link {
                gnu.linkname[..link.len()].copy_from_slice(link);
            }
        }
        header.set_entry_type(*entry_type);
        header.set_mode(0o600);
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

#[test]
fn malicious_archives_are_refused() {
    let ok_dir: RawEntry = (b"keystore/", EntryType::Directory, b"", None);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "traversal",
            crafted(&[ok_dir, (b"keystore/../x", EntryType::Regular, b"x", None)]),
            "`..`",
        ),
        (
            "leading traversal",
            crafted(&[ok_dir, (b"../x", EntryType::Regular, b"x", None)]),
            "`..`",
        ),
        (
            "absolute",
            crafted(&[ok_dir, (b"/etc/x", EntryType::Regular, b"x", None)]),
            "absolute",
        ),
        (
            "symlink",
            crafted(&[
                ok_dir,
                (b"keystore/x", EntryType::Symlink, b"", Some(b"/etc/passwd")),
            ]),
            "symbolic link",
        ),
        (
            "hardlink",
            crafted(&[
                ok_dir,
                (b"keystore/x", EntryType::Link, b"", Some(b"/etc/shadow")),
            ]),
            "hard link",
        ),
        (
            "char device",
            crafted(&[ok_dir, (b"keystore/null", EntryType::Char, b"", None)]),
            "character device",
        ),
        (
            "block device",
            crafted(&[ok_dir, (b"keystore/sda", EntryType::Block, b"", None)]),
            "block device",
        ),
        (
            "fifo",
            crafted(&[ok_dir, (b"keystore/p", EntryType::Fifo, b"", None)]),
            "fifo",
        ),
        (
            "outside",
            crafted(&[ok_dir, (b"paritydb/x", EntryType::Regular, b"x", None)]),
            "outside",
        ),
        (
            "dot component",
            crafted(&[ok_dir, (b"keystore/./x", EntryType::Regular, b"x", None)]),
            "`.`",
        ),
        (
            "duplicate",
            crafted(&[
                ok_dir,
                (b"keystore/a", EntryType::Regular, b"1", None),
                (b"keystore/a", EntryType::Regular, b"2", None),
            ]),
            "twice",
        ),
        (
            "file then child",
            crafted(&[
                ok_dir,
                (b"keystore/a", EntryType::Regular, b"1", None),
                (b"keystore/a/b", EntryType::Regular, b"2", None),
            ]),
            "which is a file",
        ),
        (
            "regular file with a link target",
            crafted(&[
                ok_dir,
                (
                    b"keystore/a",
                    EntryType::Regular,
                    b"1",
                    Some(b"/etc/passwd"),
                ),
            ]),
            "link target",
        ),
        (
            "no keystore",
            crafted(&[(b"network/", EntryType::Directory, b"", None)]),
            "no keystore",
        ),
        (
            "top is a file",
            crafted(&[(b"keystore", EntryType::Regular, b"x", None)]),
            "is a file",
        ),
        (
            "not gzip",
            b"plain text, not an archive".to_vec(),
            "archive",
        ),
    ];
    for (name, bytes, expected) in cases {
        match read_archive(&bytes) {
            Ok(archive) => panic!("{name}: accepted {:?}", archive.names()),
            Err(problem) => assert!(
                problem.contains(expected),
                "{name}: {problem:?} lacks {expected:?}"
            ),
        }
    }
}

#[test]
fn damaged_tar_header_is_refused() {
    let mut bytes = Vec::new();
    {
        let mut builder = Builder::new(&mut bytes);
        let mut header = Header::new_gnu();
        header.set_entry_type(EntryType::Directory);
        header.set_size(0);
        builder
            .append_data(&mut header, "keystore", io::empty())
            .unwrap();
        builder.finish().unwrap();
    }
    bytes[0] ^= 1; // the name changes, the stored checksum does not
    let mut gz = GzBuilder::new().write(Vec::new(), Compression::fast());
    gz.write_all(&bytes).unwrap();
    let problem = read_archive(&gz.finish().unwrap()).unwrap_err();
    assert!(problem.contains("checksum"), "{problem}");
}

#[test]
fn oversize_archives_are_refused() {
    // Declared content beyond the limit: refused before any of it is read.
    let mut builder = Builder::new(GzBuilder::new().write(Vec::new(), Compression::fast()));
    let mut header = Header::new_gnu();
    header.set_entry_type(EntryType::Directory);
    header.set_size(0);
    builder
        .append_data(&mut header, "keystore", io::empty())
        .unwrap();
    let mut header = Header::new_gnu();
    header.set_entry_type(EntryType::Regular);
    header.set_size(MAX_CONTENT_BYTES + 1);
    header.set_path("keystore/big").unwrap();
    header.set_cksum();
    // Write only the header: the reader must stop at the declared size.
    builder.get_mut().write_all(header.as_bytes()).unwrap();
    let bytes = builder.into_inner().unwrap().finish().unwrap();
    let problem = read_archive(&bytes).unwrap_err();
    assert!(problem.contains("more than"), "{problem}");

    // Too many entries.
    let names: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("keystore/{i}")).collect();
    let mut builder = Builder::new(GzBuilder::new().write(Vec::new(), Compression::fast()));
    for name in &names {
        let mut header = Header::new_gnu();
        header.set_entry_type(EntryType::Regular);
        header.set_size(0);
        builder.append_data(&mut header, name, io::empty()).unwrap();
    }
    let bytes = builder.into_inner().unwrap().finish().unwrap();
    let problem = read_archive(&bytes).unwrap_err();
    assert!(problem.contains("entries"), "{problem}");
}

#[test]
fn inflating_past_the_cap_fails() {
    let zeros = vec![0u8; 4096];
    let mut capped = Capped {
        inner: &zeros[..],
        left: 1000,
    };
    let mut sink = Vec::new();
    let error = capped.read_to_end(&mut sink).unwrap_err();
    assert!(error.to_string().contains("inflates"));
    let mut exact = Capped {
        inner: &zeros[..1000],
        left: 1000,
    };
    assert_eq!(exact.read_to_end(&mut Vec::new()).unwrap(), 1000);
}

#[test]
fn origin_comment_round_trips() {
    assert_eq!(
        parse_origin_comment(origin_comment(&origin()).as_bytes()),
        Some(origin())
    );
    assert_eq!(parse_origin_comment(b"made by gzip"), None);
    let full = Origin {
        host: Some("val-eu-1".to_owned()),
        keys: Some(vec!["62616265aa".to_owned(), "6772616ebb".to_owned()]),
        ..origin()
    };
    let comment = origin_comment(&full);
    assert!(
        comment.ends_with("; host=val-eu-1; keys=62616265aa,6772616ebb"),
        "{comment}"
    );
    assert_eq!(parse_origin_comment(comment.as_bytes()), Some(full));
    // An older archive's header: no host, no keys.
    let old = parse_origin_comment(b"warden key backup; container=3node0; chain=creditcoin3");
    assert_eq!(old, Some(origin()));
    // A host that would break the format is left out, not written.
    let odd = Origin {
        host: Some("a; keys=x".to_owned()),
        ..origin()
    };
    assert_eq!(
        parse_origin_comment(origin_comment(&odd).as_bytes()),
        Some(origin())
    );
}
