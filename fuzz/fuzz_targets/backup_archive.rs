//! Archive validation: `backup::archive::read_archive`, the gate every
//! restore passes, on hostile bytes. The first byte picks the mode: raw
//! bytes (gzip header, truncated streams), or the rest taken as a tar stream
//! and gzipped here, so the fuzzer gets past gzip's CRC to the tar checks.
//!
//! Beyond "never panics", an accepted archive must keep every promise the
//! restore relies on: relative paths under keystore/ or network/ only, no
//! `..`, no duplicates, bounded entries and content, and contents for
//! exactly the file entries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Write;
use warden::backup::archive::{Kind, check_path, read_archive};
use warden::backup::{MAX_CONTENT_BYTES, MAX_ENTRIES};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let bytes = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(rest).unwrap();
        gz.finish().unwrap()
    };
    let Ok(archive) = read_archive(&bytes) else { return };
    assert!(archive.entries.len() <= MAX_ENTRIES);
    let mut seen = std::collections::BTreeSet::new();
    let mut total = 0u64;
    for entry in &archive.entries {
        assert!(check_path(&entry.path).is_ok(), "accepted a bad path {:?}", entry.path);
        assert!(
            entry.path == "keystore" || entry.path == "network" || entry.path.starts_with("keystore/") || entry.path.starts_with("network/"),
            "accepted an entry outside keystore/ and network/: {:?}",
            entry.path
        );
        assert!(!entry.path.split('/').any(|c| c == ".." || c == "." || c.is_empty()), "{:?}", entry.path);
        assert!(seen.insert(entry.path.clone()), "duplicate entry {:?}", entry.path);
        if entry.kind == Kind::File {
            total += entry.size;
            assert_eq!(archive.contents.get(&entry.path).map(|c| c.len() as u64), Some(entry.size));
        }
    }
    assert!(total <= MAX_CONTENT_BYTES);
    let files = archive.entries.iter().filter(|e| e.kind == Kind::File).count();
    assert_eq!(archive.contents.len(), files, "contents for exactly the file entries");
});
