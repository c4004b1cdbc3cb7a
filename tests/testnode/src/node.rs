//! The running node: its identity, its on-disk layout, and what it reports at any instant.
//!
//! On-disk layout is a real node's (sc-service `BasePath`, sc-cli `RunCmd`):
//! `<base>/chains/<chain>/keystore/` (0700), `<base>/chains/<chain>/network/secret_ed25519`
//! (32 raw bytes, 0600, created once), `<base>/chains/<chain>/paritydb/full/` (the database;
//! here it only keeps the genesis time so block numbers carry on across restarts).

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::chain::{self, Chain};
use crate::cli::Config;
use crate::clock;
use crate::control::{Control, ControlSource};
use crate::identity;
use crate::keystore::{self, Keystore};
use crate::metrics;

/// `system_name` and the first log line (the node's `impl_name`).
pub const IMPL_NAME: &str = "Creditcoin Node";
/// `system_version` (`impl_version`: crate version, then the commit). The commit part is
/// made up; it spells "test node" for whoever reads it in a log.
pub const IMPL_VERSION: &str = "3.39.0-7e57de0d3c1";
/// How far ahead the sync target is while the control file says the node is syncing.
pub const SYNC_GAP: u64 = 128;

/// What the node reports at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub best: u64,
    pub finalized: u64,
    pub sync_target: u64,
    pub peers: u32,
    pub syncing: bool,
}

#[derive(Debug)]
pub struct Node {
    pub config: Config,
    pub chain: Chain,
    pub keystore: Keystore,
    pub control: ControlSource,
    pub node_name: String,
    pub peer_id: String,
    network_secret: Vec<u8>,
    /// Best block when the process started (`system_syncState.startingBlock`).
    pub starting_block: u64,
    pub start_time_secs: u64,
}

/// Creates `path` (its parent must exist) with mode 0700; an existing directory is kept as is.
fn create_private_dir(path: &Path) -> io::Result<()> {
    match DirBuilder::new().mode(0o700).create(path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        other => other,
    }
}

/// Reads the network secret, creating it on first start as a real node does.
fn load_or_create_network_secret(network_dir: &Path) -> io::Result<Vec<u8>> {
    let path = network_dir.join("secret_ed25519");
    match fs::read(&path) {
        Ok(secret) => Ok(secret),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let secret = keystore::random_bytes(32)?;
            keystore::write_private_file(&path, &secret)?;
            Ok(secret)
        }
        Err(e) => Err(e),
    }
}

/// Reads the genesis time kept in the database directory, creating it on first start.
fn load_or_create_genesis(db_dir: &Path, now_ms: u64) -> io::Result<u64> {
    let path = db_dir.join("testnode-genesis");
    match fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} does not hold a time in milliseconds", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::write(&path, now_ms.to_string())?;
            Ok(now_ms)
        }
        Err(e) => Err(e),
    }
}

/// A chain spec's display name (`system_chain`, "📋 Chain specification"), by chain id.
/// The real names live in Creditcoin's chain specs; these are plausible stand-ins.
pub fn chain_spec_name(chain_id: &str) -> String {
    match chain_id {
        "creditcoin3" | "mainnet" => "Creditcoin3".to_string(),
        "creditcoin3-testnet" | "testnet" => "Creditcoin3 Testnet".to_string(),
        "dev" => "Development".to_string(),
        "local" => "Local Testnet".to_string(),
        other => other.to_string(),
    }
}

impl Node {
    /// Lays out the base path and loads the node's identity.
    pub fn open(config: Config) -> io::Result<Node> {
        let chain_dir = config.chain_dir();
        let keystore_dir = chain_dir.join("keystore");
        let network_dir = chain_dir.join("network");
        let db_dir = database_dir(&chain_dir);
        // Parents get the usual permissions; only the keystore, which holds secrets, is
        // private (the network secret is protected by its own file mode).
        fs::create_dir_all(&db_dir)?;
        fs::create_dir_all(&network_dir)?;
        create_private_dir(&keystore_dir)?;
        let network_secret = load_or_create_network_secret(&network_dir)?;
        let now_ms = clock::now_unix_ms();
        let genesis = load_or_create_genesis(&db_dir, now_ms)?;
        let chain = Chain::new(&config.chain, genesis, config.block_time_ms);
        let node_name = config
            .name
            .clone()
            .unwrap_or_else(|| identity::default_node_name(&network_secret));
        Ok(Node {
            keystore: Keystore::new(keystore_dir),
            control: ControlSource::new(config.control_path()),
            peer_id: identity::peer_id_of(&network_secret),
            starting_block: chain.best_at(now_ms),
            start_time_secs: now_ms / 1000,
            chain,
            node_name,
            network_secret,
            config,
        })
    }

    pub fn database_dir(&self) -> PathBuf {
        database_dir(&self.config.chain_dir())
    }

    /// Whether this chain expects peers (`system_health.shouldHavePeers`): false for
    /// development chains, as for a real node's `Development`/`Local` chain types.
    pub fn should_have_peers(&self) -> bool {
        !matches!(self.config.chain.as_str(), "dev" | "local")
    }

    pub fn status(&self, control: &Control, now_ms: u64) -> Status {
        let best = self.chain.best_at(now_ms);
        Status {
            best,
            finalized: control.finalized(best),
            sync_target: if control.syncing {
                best + SYNC_GAP
            } else {
                best
            },
            peers: control.peers,
            syncing: control.syncing,
        }
    }

    /// Whether this node authored block `number` (a validator claims roughly one slot in
    /// four; which ones depends on its network identity, so two nodes differ).
    pub fn authored(&self, number: u64) -> bool {
        let salt = self.network_secret.first().copied().unwrap_or(0);
        self.config.validator
            && number > 0
            && (self.chain.block_hash(number)[0] ^ salt).is_multiple_of(4)
    }

    pub fn metrics_snapshot(&self, control: &Control, now_ms: u64) -> metrics::Snapshot {
        let status = self.status(control, now_ms);
        metrics::Snapshot {
            chain: self.config.chain.clone(),
            node_name: self.node_name.clone(),
            version: IMPL_VERSION.to_string(),
            best: status.best,
            finalized: status.finalized,
            sync_target: status.sync_target,
            peers: status.peers,
            major_syncing: status.syncing,
            authority: self.config.validator,
            start_time_secs: self.start_time_secs,
        }
    }

    /// The start-up lines, in the order a real node prints them (sc-cli `print_node_infos`,
    /// then sc-network's identity line).
    pub fn startup_lines(&self) -> Vec<String> {
        let year = clock::year_utc(self.start_time_secs);
        let role = if self.config.validator {
            "AUTHORITY"
        } else {
            "FULL"
        };
        vec![
            IMPL_NAME.to_string(),
            format!("✌️  version {IMPL_VERSION}"),
            format!("❤️  by Gluwa Inc., 2017-{year}"),
            format!(
                "📋 Chain specification: {}",
                chain_spec_name(&self.config.chain)
            ),
            format!("🏷  Node name: {}", self.node_name),
            format!("👤 Role: {role}"),
            format!("💾 Database: ParityDb at {}", self.database_dir().display()),
            format!("🏷  Local node identity is: {}", self.peer_id),
        ]
    }
}

fn database_dir(chain_dir: &Path) -> PathBuf {
    chain_dir.join("paritydb").join("full")
}

/// sc-informant's `TransferRateFormat`: `0`, `N B/s` under 100, else kiB/s or MiB/s with one
/// decimal.
pub fn transfer_rate(bytes_per_sec: u64) -> String {
    if bytes_per_sec == 0 {
        "0".to_string()
    } else if bytes_per_sec < 100 {
        format!("{bytes_per_sec} B/s")
    } else if bytes_per_sec < 1024 * 1024 {
        format!("{:.1}kiB/s", bytes_per_sec as f64 / 1024.0)
    } else {
        format!("{:.1}MiB/s", bytes_per_sec as f64 / (1024.0 * 1024.0))
    }
}

/// The informant line printed every 5 s (sc-informant `display.rs`):
/// `💤 Idle (3 peers), best: #12 (0x…), finalized #10 (0x…), ⬇ 1.2kiB/s ⬆ 0.9kiB/s`, or
/// `⚙️  Syncing  5.0 bps, target=#140 (3 peers), …` during a major sync.
pub fn informant_line(chain: &Chain, status: &Status, blocks_per_sec: f64) -> String {
    let (level, state, target) = if status.syncing {
        (
            "⚙️ ",
            format!("Syncing {blocks_per_sec:4.1} bps"),
            format!(", target=#{}", status.sync_target),
        )
    } else {
        ("💤", "Idle".to_string(), String::new())
    };
    // Bandwidth that looks alive when there are peers and is 0 without them.
    let (inbound, outbound) = if status.peers == 0 {
        (0, 0)
    } else {
        (1100 + status.best % 300, 800 + status.best % 250)
    };
    format!(
        "{level} {state}{target} ({} peers), best: #{} ({}), finalized #{} ({}), ⬇ {} ⬆ {}",
        status.peers,
        status.best,
        chain::short_hash(&chain.block_hash(status.best)),
        status.finalized,
        chain::short_hash(&chain.block_hash(status.finalized)),
        transfer_rate(inbound),
        transfer_rate(outbound),
    )
}

/// sc-consensus-slots' line for a block this node authored.
pub fn pre_sealed_line(chain: &Chain, number: u64) -> String {
    format!(
        "🔖 Pre-sealed block for proposal at {number}. Hash now {}, previously {}.",
        crate::hex::encode_prefixed(&chain.block_hash(number)),
        crate::hex::encode_prefixed(&chain.pre_seal_hash(number)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_rate_matches_the_informant() {
        assert_eq!(transfer_rate(0), "0");
        assert_eq!(transfer_rate(99), "99 B/s");
        assert_eq!(transfer_rate(1229), "1.2kiB/s");
        assert_eq!(transfer_rate(3 * 1024 * 1024), "3.0MiB/s");
    }

    fn status(best: u64, peers: u32, syncing: bool) -> Status {
        Status {
            best,
            finalized: Chain::finalized_of(best),
            sync_target: if syncing { best + SYNC_GAP } else { best },
            peers,
            syncing,
        }
    }

    #[test]
    fn idle_line_has_the_informant_shape() {
        let chain = Chain::new("creditcoin3", 0, 1000);
        let line = informant_line(&chain, &status(12, 3, false), 1.0);
        let best = chain::short_hash(&chain.block_hash(12));
        let finalized = chain::short_hash(&chain.block_hash(10));
        assert_eq!(
            line,
            format!(
                "💤 Idle (3 peers), best: #12 ({best}), finalized #10 ({finalized}), ⬇ 1.1kiB/s ⬆ 0.8kiB/s"
            )
        );
        let alone = informant_line(&chain, &status(12, 0, false), 1.0);
        assert!(
            alone.starts_with("💤 Idle (0 peers), best: #12 "),
            "{alone}"
        );
        assert!(alone.ends_with("⬇ 0 ⬆ 0"), "{alone}");
    }

    #[test]
    fn syncing_line_shows_speed_and_target() {
        let chain = Chain::new("creditcoin3", 0, 1000);
        let line = informant_line(&chain, &status(12, 2, true), 1.0);
        assert!(
            line.starts_with("⚙️  Syncing  1.0 bps, target=#140 (2 peers), best: #12 ("),
            "{line}"
        );
    }

    #[test]
    fn pre_sealed_line_names_block_and_full_hashes() {
        let chain = Chain::new("creditcoin3", 0, 1000);
        let line = pre_sealed_line(&chain, 42);
        assert!(line.starts_with("🔖 Pre-sealed block for proposal at 42. Hash now 0x"));
        assert!(line.ends_with('.'));
        assert_eq!(line.matches("0x").count(), 2);
    }

    #[test]
    fn opens_a_real_nodes_layout_and_keeps_identity() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("testnode-node-{}", std::process::id()));
        let config = Config {
            base_path: base.clone(),
            validator: true,
            ..Config::default()
        };
        let node = Node::open(config.clone()).unwrap();
        let chain_dir = base.join("chains/creditcoin3");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&chain_dir.join("keystore")), 0o700);
        let secret = chain_dir.join("network/secret_ed25519");
        assert_eq!(mode(&secret), 0o600);
        assert_eq!(fs::read(&secret).unwrap().len(), 32);
        assert!(node.peer_id.starts_with("12D3KooW"));
        let lines = node.startup_lines();
        assert!(lines.contains(&"👤 Role: AUTHORITY".to_string()));
        assert!(lines.contains(&format!(
            "💾 Database: ParityDb at {}",
            chain_dir.join("paritydb/full").display()
        )));
        // A second start keeps the secret, hence the identity and the default name.
        let again = Node::open(config).unwrap();
        assert_eq!(again.peer_id, node.peer_id);
        assert_eq!(again.node_name, node.node_name);
        fs::remove_dir_all(base).unwrap();
    }
}
