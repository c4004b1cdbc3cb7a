//! Who the node runs as, and giving restored files to that user.
//!
//! The official image (`gluwa/creditcoin3`) runs its node as the non-root user
//! `creditcoin`; the original guide's runs it as root. A restored keystore must belong to
//! the node's user with the node's modes (directories 0700, files 0600: what
//! [`super::archive`] extracts), or the node cannot read its keys.
//!
//! How: the backup's tree is extracted on the host, `chown`ed there to the node's uid and
//! gid, and copied in with plain `docker cp`, whose tar stream carries the host files'
//! numeric owners and modes (observed on Engine 20.10, running and stopped containers).
//! Rejected: `docker cp -a`, which resolves the container's `User` with the *host's*
//! `getent` on 20.10 ("getent unable to find entry \"creditcoin\""), so it fails on any
//! host without that user; and `docker exec -u 0 … chown`, which needs the container
//! running (a stopped node is restored too) and a `chown` in the image.
//!
//! The uid/gid and home come from the container's `Config.User`: numeric parts are taken
//! as they are; names are looked up in the container's own `/etc/passwd` and `/etc/group`,
//! copied out with `docker cp` (bounded, works on a stopped container).

use std::fs;
use std::io;
use std::path::Path;

use crate::docker::ContainerInspect;

use super::engine::Engine;

/// Largest `/etc/passwd` or `/etc/group` read.
const MAX_DB_BYTES: u64 = 1024 * 1024;

/// The user a node runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeUser {
    pub uid: u32,
    pub gid: u32,
    /// Its home directory (sc-cli's default base path is under it).
    pub home: String,
}

impl NodeUser {
    pub fn root() -> NodeUser {
        NodeUser {
            uid: 0,
            gid: 0,
            home: "/root".to_owned(),
        }
    }
}

/// `Config.User` names root (or no user, which is root).
pub fn is_root_user(user: &str) -> bool {
    let (name, group) = user.split_once(':').unwrap_or((user, ""));
    matches!(name, "" | "root" | "0") && matches!(group, "" | "root" | "0")
}

/// A passwd line's fields for `name` (or uid): (uid, gid, home).
fn passwd_entry(passwd: &str, user: &str) -> Option<(u32, u32, String)> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 7 {
            return None;
        }
        let uid: u32 = fields[2].parse().ok()?;
        let gid: u32 = fields[3].parse().ok()?;
        (fields[0] == user || fields[2] == user).then(|| (uid, gid, fields[5].to_owned()))
    })
}

fn group_id(group_db: &str, group: &str) -> Option<u32> {
    if let Ok(gid) = group.parse() {
        return Some(gid);
    }
    group_db.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 3 && fields[0] == group)
            .then(|| fields[2].parse().ok())
            .flatten()
    })
}

/// Resolves `Config.User` (`name`, `uid`, `name:group`, `uid:gid`) against the
/// container's user and group databases, as the engine does when it starts the process.
pub fn resolve_user(user: &str, passwd: &str, group_db: &str) -> Result<NodeUser, String> {
    if is_root_user(user) {
        return Ok(NodeUser::root());
    }
    let (name, group) = match user.split_once(':') {
        Some((name, group)) => (name, Some(group)),
        None => (user, None),
    };
    let (uid, primary_gid, home) = match passwd_entry(passwd, name) {
        Some(found) => found,
        // A numeric uid with no passwd entry is legal; Docker gives it gid 0 and home /.
        None => match name.parse::<u32>() {
            Ok(uid) => (uid, 0, "/".to_owned()),
            Err(_) => {
                return Err(format!(
                    "it runs as user {name:?}, which its /etc/passwd does not list"
                ));
            }
        },
    };
    let gid = match group {
        Some(group) => group_id(group_db, group).ok_or_else(|| {
            format!("it runs as group {group:?}, which its /etc/group does not list")
        })?,
        None => primary_gid,
    };
    Ok(NodeUser { uid, gid, home })
}

/// Reads one small file out of the container ("" when it has none).
fn read_db(
    engine: &dyn Engine,
    container: &str,
    path: &str,
    scratch: &Path,
) -> Result<String, String> {
    let dest = scratch.join(format!("owner-{}", path.replace('/', "_")));
    match engine.cp_from(container, path, &dest) {
        Ok(()) => {}
        Err(error) if super::chain::is_missing_path(&error) => return Ok(String::new()),
        Err(error) => return Err(error.to_string()),
    }
    let meta = fs::symlink_metadata(&dest).map_err(|e| e.to_string())?;
    if !meta.is_file() || meta.len() > MAX_DB_BYTES {
        let _ = fs::remove_dir_all(&dest);
        let _ = fs::remove_file(&dest);
        return Err(format!("{path} in {container} is not a small regular file"));
    }
    let text = fs::read_to_string(&dest).map_err(|e| e.to_string());
    let _ = fs::remove_file(&dest);
    text
}

/// The user `inspect`'s node runs as. Root costs no Docker call.
pub fn node_user(
    engine: &dyn Engine,
    inspect: &ContainerInspect,
    scratch: &Path,
) -> Result<NodeUser, String> {
    let user = inspect.config.user.as_str();
    if is_root_user(user) {
        return Ok(NodeUser::root());
    }
    let passwd = read_db(engine, &inspect.name, "/etc/passwd", scratch)?;
    let group_db = if user.contains(':') {
        read_db(engine, &inspect.name, "/etc/group", scratch)?
    } else {
        String::new()
    };
    resolve_user(user, &passwd, &group_db)
}

/// Gives `root` and everything below it to `uid:gid` (no symlink is followed: the tree
/// holds only directories and regular files, as extracted from a checked archive).
pub fn chown_tree(root: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(root, Some(uid), Some(gid))?;
    if fs::symlink_metadata(root)?.is_dir() {
        for entry in fs::read_dir(root)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        creditcoin:x:1000:1000::/creditcoin-node:/bin/sh\n\
        broken:x:notanumber:1::/:/bin/sh\n";
    const GROUP: &str = "root:x:0:\ncreditcoin:x:1000:\nstaff:x:50:\n";

    #[test]
    fn users_resolve_as_the_engine_resolves_them() {
        let official = NodeUser {
            uid: 1000,
            gid: 1000,
            home: "/creditcoin-node".to_owned(),
        };
        for (user, want) in [
            ("", Ok(NodeUser::root())),
            ("root", Ok(NodeUser::root())),
            ("0:0", Ok(NodeUser::root())),
            ("creditcoin", Ok(official.clone())),
            ("1000", Ok(official.clone())),
            (
                "creditcoin:staff",
                Ok(NodeUser {
                    gid: 50,
                    ..official.clone()
                }),
            ),
            (
                "1000:7",
                Ok(NodeUser {
                    gid: 7,
                    ..official.clone()
                }),
            ),
            (
                "4242",
                Ok(NodeUser {
                    uid: 4242,
                    gid: 0,
                    home: "/".to_owned(),
                }),
            ),
        ] {
            assert_eq!(resolve_user(user, PASSWD, GROUP), want, "{user:?}");
        }
        for bad in ["nobody", "broken", "creditcoin:nogroup"] {
            assert!(resolve_user(bad, PASSWD, GROUP).is_err(), "{bad:?}");
        }
        assert!(!is_root_user("root:staff"));
    }

    #[test]
    fn chown_tree_reaches_every_entry() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("warden-chown-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("keystore")).unwrap();
        fs::write(dir.join("keystore/a"), b"x").unwrap();
        // Giving files away needs CAP_CHOWN; without it the call must fail, not pretend.
        let uid = 4321;
        match chown_tree(&dir, uid, uid) {
            Ok(()) => {
                for path in [dir.clone(), dir.join("keystore"), dir.join("keystore/a")] {
                    let meta = fs::metadata(&path).unwrap();
                    assert_eq!((meta.uid(), meta.gid()), (uid, uid), "{}", path.display());
                }
            }
            Err(error) => assert_eq!(error.kind(), io::ErrorKind::PermissionDenied),
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
