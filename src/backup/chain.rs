//! Where a node keeps its keys: `<base path>/chains/<chain id>/{keystore,network}`.
//!
//! The base path comes from the node's command line (`--base-path`/`-d`). Without one it is
//! the node's own default when the container runs the node binary itself (the official
//! image's `/bin/creditcoin3-node`): sc-cli's `CliConfiguration::base_path` falls back to
//! `BasePath::from_project("", "", &executable_name())` (polkadot-sdk
//! `substrate/client/cli/src/config.rs`), which sc-service resolves with the `directories`
//! crate's `ProjectDirs::data_local_dir()`: `$HOME/.local/share/<executable name>` on Linux.
//! A container that runs something else (the guide's `/start.sh`, warden's `testnode`) is
//! taken to use the guide's `/root/data`. The chain id is the chain spec's `id`, which is not what `--chain`
//! says: Creditcoin 3's `load_spec` (gluwa/creditcoin3 `node/src/command.rs`) maps
//! `mainnet`, `testnet`, `devnet`, `dev` and `local` to built-in specs whose ids are
//! `creditcoin3` (the directory operators' scripts use for mainnet), `creditcoin3_testnet`,
//! `creditcoin3_dev`, `dev` and `local_testnet`; anything else is a spec file path, whose
//! JSON has the id. Often the command line shows none of this (the guide's image runs
//! `/start.sh`, which holds the flags), so the id is found by looking in the container:
//!
//! - running: `docker exec <c> ls -1 -- <base>/chains` lists the chain directories, one
//!   cheap call;
//! - stopped (exec impossible) or without `ls`: each candidate is probed by listing
//!   `<base>/chains/<id>/keystore` (then `…/network`) from the tar headers of
//!   `docker cp <c>:<path> -` ([`Engine::list_dir`]), which works on stopped containers,
//!   streams only those (small) directories and writes no key file anywhere.
//!
//! Rejected: `docker cp <c>:<base>/chains -` to list a stopped container's chains. It
//! streams a tar of everything below, the whole chain database included (hundreds of
//! GB on a synced node), just to read a few directory names.
//!
//! Candidates, in order: the configured hint, the id `--chain` implies (or the id in the
//! spec file it names), `creditcoin3`, `creditcoin` (Creditcoin 2's directory).

use std::path::Path;
use std::time::Duration;

use crate::docker::{ContainerInspect, DockerError};

use super::engine::Engine;

/// The base path of a node started without `--base-path` by a script or a wrapper, as the
/// original guide's image uses.
pub const DEFAULT_BASE_PATH: &str = "/root/data";

/// The base path a node started without `--base-path` uses: sc-cli's default when the
/// container's program is a Substrate node binary (its name ends in `-node`, as
/// `creditcoin3-node` does), `$HOME/.local/share/<name>`; else [`DEFAULT_BASE_PATH`].
pub fn default_base_path(program: &str, home: &str) -> String {
    let name = program.rsplit('/').next().unwrap_or(program);
    if name.ends_with("-node") && is_valid_chain_id(name) {
        format!("{}/.local/share/{name}", home.trim_end_matches('/'))
    } else {
        DEFAULT_BASE_PATH.to_owned()
    }
}

/// Fallback chain ids: Creditcoin 3 mainnet, then Creditcoin 2.
pub const FALLBACK_CHAIN_IDS: [&str; 2] = ["creditcoin3", "creditcoin"];

/// Largest chain spec file read to learn its id (mainnet's raw spec is ~2.3 MB).
const MAX_SPEC_BYTES: u64 = 256 * 1024 * 1024;

/// What a container's configuration says about its key directories, before asking
/// the container itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePaths {
    /// Absolute, without a trailing `/`.
    pub base_path: String,
    /// The operator's configured chain id, if valid.
    pub chain_id_hint: Option<String>,
    /// The chain id `--chain` implies (a built-in name, or an id given directly).
    pub chain_id_from_args: Option<String>,
    /// The chain spec file `--chain` names, if it names a file (absolute).
    pub chain_spec_file: Option<String>,
}

impl NodePaths {
    /// Chain ids to look for, most likely first, deduplicated: the hint, the id read
    /// from the spec file (`spec_id`), the id implied by `--chain`, the fallbacks.
    pub fn candidates(&self, spec_id: Option<&str>) -> Vec<String> {
        let mut candidates: Vec<String> = Vec::new();
        let ids = [
            self.chain_id_hint.as_deref(),
            spec_id,
            self.chain_id_from_args.as_deref(),
        ]
        .into_iter()
        .flatten()
        .chain(FALLBACK_CHAIN_IDS);
        for id in ids {
            if is_valid_chain_id(id) && !candidates.iter().any(|c| c == id) {
                candidates.push(id.to_owned());
            }
        }
        candidates
    }
}

/// Where one node's keys are.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainDir {
    pub base_path: String,
    pub chain_id: String,
}

impl ChainDir {
    /// `<base>/chains/<id>`
    pub fn chain_path(&self) -> String {
        format!(
            "{}/chains/{}",
            self.base_path.trim_end_matches('/'),
            self.chain_id
        )
    }

    /// `<base>/chains/<id>/<name>` (`keystore`, `network`).
    pub fn path_of(&self, name: &str) -> String {
        format!("{}/{name}", self.chain_path())
    }
}

/// The words of the node's command line: the container's arguments, plus the words
/// of a `sh -c "…"` script among them (so `--base-path` is found in either form).
fn command_words(inspect: &ContainerInspect) -> Vec<String> {
    let mut words = inspect.args.clone();
    let mut extra = Vec::new();
    for pair in inspect.args.windows(2) {
        if pair[0] == "-c"
            && let Some(split) = shlex::split(&pair[1])
        {
            extra.extend(split);
        }
    }
    words.extend(extra);
    words
}

/// The last value of any of `flags` (`--flag V`, `--flag=V`).
fn flag_value<'a>(words: &'a [String], flags: &[&str]) -> Option<&'a str> {
    let mut found = None;
    let mut iter = words.iter();
    while let Some(word) = iter.next() {
        for flag in flags {
            if word == flag {
                if let Some(value) = iter.clone().next() {
                    found = Some(value.as_str());
                }
            } else if let Some(value) = word
                .strip_prefix(flag)
                .and_then(|rest| rest.strip_prefix('='))
            {
                found = Some(value);
            }
        }
    }
    found
}

/// A chain id that is safe as one path component.
pub fn is_valid_chain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The chain id a Creditcoin 3 node gives a built-in `--chain` name.
fn builtin_chain_id(name: &str) -> Option<&'static str> {
    match name {
        "mainnet" => Some("creditcoin3"),
        "testnet" => Some("creditcoin3_testnet"),
        "devnet" => Some("creditcoin3_dev"),
        "dev" => Some("dev"),
        "local" => Some("local_testnet"),
        _ => None,
    }
}

fn absolute(path: &str, working_dir: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_owned()
    } else {
        let dir = if working_dir.is_empty() {
            "/"
        } else {
            working_dir
        };
        format!("{}/{}", dir.trim_end_matches('/'), path)
    };
    let trimmed = joined.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Reads the base path and chain id candidates from the container's configuration;
/// `home` is the node user's home directory (for sc-cli's default base path). Pure:
/// nothing is asked of Docker.
pub fn chain_paths(
    inspect: &ContainerInspect,
    chain_id_hint: Option<&str>,
    home: &str,
) -> NodePaths {
    let words = command_words(inspect);
    let working_dir = inspect.config.working_dir.as_str();
    let base_path = flag_value(&words, &["--base-path", "-d"])
        .filter(|value| !value.is_empty() && !value.contains('\0'))
        .map(|value| absolute(value, working_dir))
        .unwrap_or_else(|| default_base_path(&inspect.path, home));
    let mut chain_id_from_args = None;
    let mut chain_spec_file = None;
    if let Some(chain) = flag_value(&words, &["--chain"]) {
        if let Some(id) = builtin_chain_id(chain) {
            chain_id_from_args = Some(id.to_owned());
        } else if chain.contains('/') || chain.ends_with(".json") {
            if !chain.contains('\0') {
                chain_spec_file = Some(absolute(chain, working_dir));
            }
        } else if is_valid_chain_id(chain) {
            // Not a built-in name of Creditcoin 3 and not a path: other nodes (and
            // warden's test node) take the id itself.
            chain_id_from_args = Some(chain.to_owned());
        }
    }
    NodePaths {
        base_path,
        chain_id_hint: chain_id_hint
            .filter(|id| is_valid_chain_id(id))
            .map(str::to_owned),
        chain_id_from_args,
        chain_spec_file,
    }
}

/// The `id` of a chain spec file's JSON.
pub fn spec_chain_id(json: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Spec {
        id: String,
    }
    serde_json::from_slice::<Spec>(json)
        .ok()
        .map(|spec| spec.id)
        .filter(|id| is_valid_chain_id(id))
}

/// Why no chain directory was chosen.
#[derive(Debug)]
pub enum ResolveError {
    /// Looked everywhere it could: lists what was tried and what exists (if known).
    NotFound {
        tried: Vec<String>,
        found: Option<Vec<String>>,
    },
    Docker(DockerError),
}

/// True when a `docker cp` failed because the path does not exist in the container.
pub fn is_missing_path(error: &DockerError) -> bool {
    match error {
        DockerError::Failed { stderr, .. } => stderr
            .to_ascii_lowercase()
            .contains("could not find the file"),
        _ => false,
    }
}

const EXEC_TIMEOUT: Duration = Duration::from_secs(30);

/// Finds the chain directory in the container (see the module docs). `scratch` is a
/// private empty directory for probe copies; it may be left with files in it.
pub fn resolve_chain(
    engine: &dyn Engine,
    container: &str,
    paths: &NodePaths,
    running: bool,
    scratch: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<ChainDir, ResolveError> {
    let mut spec_id = None;
    if let Some(spec) = &paths.chain_spec_file {
        let dest = scratch.join("chain-spec.json");
        match engine.cp_from(container, spec, &dest) {
            Ok(()) => {
                spec_id = std::fs::metadata(&dest)
                    .ok()
                    .filter(|meta| meta.is_file() && meta.len() <= MAX_SPEC_BYTES)
                    .and_then(|_| std::fs::read(&dest).ok())
                    .and_then(|json| spec_chain_id(&json));
                if let Some(id) = &spec_id {
                    progress(&format!("the chain spec {spec} has id {id}"));
                }
                let _ = std::fs::remove_file(&dest);
            }
            Err(error) if error.is_engine_unavailable() => {
                return Err(ResolveError::Docker(error));
            }
            Err(_) => progress(&format!("could not read the chain spec {spec}")),
        }
    }
    let candidates = paths.candidates(spec_id.as_deref());
    let chains = format!("{}/chains", paths.base_path.trim_end_matches('/'));
    let choose = |chain_id: String| ChainDir {
        base_path: paths.base_path.clone(),
        chain_id,
    };
    if running {
        let argv = ["ls", "-1", "--", chains.as_str()];
        match engine.exec(container, &argv, EXEC_TIMEOUT) {
            Ok(output) if output.exit_code == 0 => {
                let found: Vec<String> = output
                    .stdout
                    .lines()
                    .map(str::trim)
                    .filter(|name| is_valid_chain_id(name))
                    .map(str::to_owned)
                    .collect();
                if let Some(id) = candidates.iter().find(|c| found.contains(c)) {
                    return Ok(choose(id.clone()));
                }
                if let [only] = found.as_slice() {
                    return Ok(choose(only.clone()));
                }
                return Err(ResolveError::NotFound {
                    tried: candidates,
                    found: Some(found),
                });
            }
            Ok(_) => {
                return Err(ResolveError::NotFound {
                    tried: candidates,
                    found: Some(Vec::new()),
                });
            }
            Err(error) if error.is_engine_unavailable() => {
                return Err(ResolveError::Docker(error));
            }
            // No `ls` in the image, or it stopped meanwhile: probe instead.
            Err(_) => {}
        }
    }
    // The keystore first; the network directory too, so a node whose keystore was
    // lost (the reason for many restores) is still found.
    for id in &candidates {
        for sub in ["keystore", "network"] {
            let path = format!("{chains}/{id}/{sub}");
            match engine.list_dir(container, &path) {
                Ok(_) => return Ok(choose(id.clone())),
                Err(error) if is_missing_path(&error) => continue,
                Err(error) => return Err(ResolveError::Docker(error)),
            }
        }
    }
    Err(ResolveError::NotFound {
        tried: candidates,
        found: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::parse_inspect;

    pub(crate) fn inspect_with(args: &[&str], working_dir: &str) -> ContainerInspect {
        let json = serde_json::json!([{
            "Id": "abc",
            "Name": "/n0",
            "Path": "/usr/local/bin/node",
            "Args": args,
            "State": {"Status": "running", "Running": true},
            "Config": {"Image": "img", "User": "", "WorkingDir": working_dir},
            "HostConfig": {"NetworkMode": "default"}
        }]);
        parse_inspect(&json.to_string()).unwrap().remove(0)
    }

    #[test]
    fn paths_from_command_lines() {
        // args, working dir, hint → base path, candidates, spec file
        type Case<'a> = (
            &'a [&'a str],
            &'a str,
            Option<&'a str>,
            &'a str,
            &'a [&'a str],
            Option<&'a str>,
        );
        let cases: &[Case] = &[
            (
                &[],
                "",
                None,
                "/root/data",
                &["creditcoin3", "creditcoin"],
                None,
            ),
            (
                &["--base-path", "/data/", "--chain", "testnet"],
                "",
                None,
                "/data",
                &["creditcoin3_testnet", "creditcoin3", "creditcoin"],
                None,
            ),
            (
                &["-d", "rel", "--chain=mainnet"],
                "/srv",
                None,
                "/srv/rel",
                &["creditcoin3", "creditcoin"],
                None,
            ),
            (
                &["--chain", "/root/data/chainspecs/mainnetSpecRaw.json"],
                "",
                Some("mine"),
                "/root/data",
                &["mine", "creditcoin3", "creditcoin"],
                Some("/root/data/chainspecs/mainnetSpecRaw.json"),
            ),
            (
                &["--chain", "spec.json"],
                "/w",
                None,
                "/root/data",
                &["creditcoin3", "creditcoin"],
                Some("/w/spec.json"),
            ),
            // warden's test node takes the id itself.
            (
                &["--chain", "creditcoin3"],
                "",
                None,
                "/root/data",
                &["creditcoin3", "creditcoin"],
                None,
            ),
            (
                &["-c", "exec node --base-path /b --chain devnet"],
                "",
                None,
                "/b",
                &["creditcoin3_dev", "creditcoin3", "creditcoin"],
                None,
            ),
            // Unsafe words are not candidates.
            (
                &["--chain", ".."],
                "",
                Some("../x"),
                "/root/data",
                &["creditcoin3", "creditcoin"],
                None,
            ),
        ];
        for (args, working_dir, hint, base, candidates, spec) in cases {
            let paths = chain_paths(&inspect_with(args, working_dir), *hint, "/root");
            assert_eq!(paths.base_path, *base, "{args:?}");
            assert_eq!(paths.candidates(None), *candidates, "{args:?}");
            assert_eq!(paths.chain_spec_file.as_deref(), *spec, "{args:?}");
        }
    }

    #[test]
    fn without_base_path_a_node_binary_uses_sc_clis_default() {
        assert_eq!(
            default_base_path("/bin/creditcoin3-node", "/creditcoin-node"),
            "/creditcoin-node/.local/share/creditcoin3-node"
        );
        assert_eq!(
            default_base_path("creditcoin3-node", "/root/"),
            "/root/.local/share/creditcoin3-node"
        );
        for script in ["/start.sh", "/usr/local/bin/testnode", "/bin/sh", ""] {
            assert_eq!(
                default_base_path(script, "/root"),
                DEFAULT_BASE_PATH,
                "{script}"
            );
        }
        let mut official = inspect_with(&["--chain", "/mainnetSpecRaw.json"], "/creditcoin-node");
        official.path = "/bin/creditcoin3-node".to_owned();
        let paths = chain_paths(&official, None, "/creditcoin-node");
        assert_eq!(
            paths.base_path,
            "/creditcoin-node/.local/share/creditcoin3-node"
        );
        assert_eq!(
            paths.chain_spec_file.as_deref(),
            Some("/mainnetSpecRaw.json")
        );
    }

    #[test]
    fn a_spec_files_id_comes_after_the_hint() {
        let args = ["--chain", "/specs/raw.json"];
        let without_hint = chain_paths(&inspect_with(&args, ""), None, "/root");
        assert_eq!(
            without_hint.candidates(Some("creditcoin3_testnet")),
            ["creditcoin3_testnet", "creditcoin3", "creditcoin"]
        );
        let with_hint = chain_paths(&inspect_with(&args, ""), Some("creditcoin"), "/root");
        assert_eq!(
            with_hint.candidates(Some("creditcoin3_testnet")),
            ["creditcoin", "creditcoin3_testnet", "creditcoin3"]
        );
    }

    #[test]
    fn spec_ids() {
        assert_eq!(
            spec_chain_id(
                br#"{"name":"Creditcoin 3 Testnet","id":"creditcoin3_testnet","genesis":{}}"#
            ),
            Some("creditcoin3_testnet".to_owned())
        );
        assert_eq!(spec_chain_id(br#"{"id":"../x"}"#), None);
        assert_eq!(spec_chain_id(b"not json"), None);
    }

    #[test]
    fn chain_dir_paths() {
        let dir = ChainDir {
            base_path: "/root/data".to_owned(),
            chain_id: "creditcoin3".to_owned(),
        };
        assert_eq!(
            dir.path_of("keystore"),
            "/root/data/chains/creditcoin3/keystore"
        );
    }
}
