//! On-chain storage read through a node's RPC: [`RpcStorage`] implements
//! [`StorageReader`] with every read pinned to one block (the finalized head, inside
//! the node's pruning window), so a lookup sees one consistent state. `prefetch` reads
//! many keys per `state_queryStorageAt` call, which matters through `docker exec curl`.
use super::{RpcClient, RpcError};
use crate::chain::{self, StorageReader};

/// On-chain storage through `state_getStorage`, all reads at one block,
/// with values fetched in bulk beforehand (`prefetch`) served from memory.
pub struct RpcStorage<'a> {
    client: &'a RpcClient,
    at: String,
    prefetched: std::cell::RefCell<std::collections::HashMap<Vec<u8>, Option<Vec<u8>>>>,
}

/// Keys per `state_queryStorageAt` call.
const PREFETCH_CHUNK: usize = 128;

impl<'a> RpcStorage<'a> {
    pub fn at_finalized(client: &'a RpcClient) -> Result<RpcStorage<'a>, RpcError> {
        Ok(RpcStorage {
            at: client.chain_get_finalized_head()?,
            client,
            prefetched: Default::default(),
        })
    }

    /// The number of the block the reads are pinned to.
    pub fn block_number(&self) -> Result<u32, RpcError> {
        let header = self.client.chain_get_header(Some(&self.at))?;
        Ok(header.map_or(0, |h| u32::try_from(h.number).unwrap_or(u32::MAX)))
    }

    /// Fetch many values in a few calls: through `docker exec curl` each call
    /// costs a process, and a payout check reads hundreds of keys. A node
    /// without `state_queryStorageAt` is read key by key instead.
    pub fn prefetch(&self, keys: &[Vec<u8>]) {
        for chunk in keys.chunks(PREFETCH_CHUNK) {
            let hex: Vec<String> = chunk.iter().map(|k| chain::keys::to_hex(k)).collect();
            let Ok(values) = self.client.state_query_storage_at(&hex, &self.at) else {
                return;
            };
            let mut cache = self.prefetched.borrow_mut();
            // Keys the node did not list have no value at this block.
            for key in chunk {
                cache.insert(key.clone(), None);
            }
            for (key_hex, value) in values {
                if let Ok(key) = hex::decode(key_hex.trim_start_matches("0x")) {
                    cache.insert(key, value);
                }
            }
        }
    }
}

impl StorageReader for RpcStorage<'_> {
    type Error = RpcError;
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, RpcError> {
        if let Some(value) = self.prefetched.borrow().get(key) {
            return Ok(value.clone());
        }
        self.client
            .state_get_storage(&chain::keys::to_hex(key), Some(&self.at))
    }
}
