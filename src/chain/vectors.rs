//! Checks every vector in `tests/vectors/substrate.json`, which `scripts/gen-vectors`
//! writes with the Python Substrate libraries (substrate-interface, scalecodec): byte
//! layouts here are compared with an independent implementation, not with themselves.

use std::collections::BTreeMap;

use serde_json::Value;

use super::hashing;
use super::keys;
use super::scale::{Bytes, Compact, Decode, Encode, decode_all};
use super::session_keys::{keystore_file_name, parse_keystore_file_name, split_session_keys};
use super::ss58;
use super::types::{
    AccountId32, ActiveEraInfo, DisabledValidators, EraRewardPoints, Exposure, IndividualExposure,
    KeyTypeId, PagedExposureMetadata, SessionKeys, StakingLedger, UnlockChunk, ValidatorPrefs,
};

const VECTORS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/substrate.json"
));

fn vectors() -> Value {
    serde_json::from_str(VECTORS).expect("tests/vectors/substrate.json is JSON")
}

fn list<'a>(doc: &'a Value, name: &str) -> &'a Vec<Value> {
    let list = doc[name]
        .as_array()
        .unwrap_or_else(|| panic!("vectors have no list {name:?}"));
    assert!(!list.is_empty(), "vector list {name:?} is empty");
    list
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value}"))
}

fn bytes(value: &Value) -> Vec<u8> {
    let text = text(value);
    hex::decode(text.strip_prefix("0x").expect("hex starts with 0x"))
        .unwrap_or_else(|e| panic!("bad hex {text}: {e}"))
}

fn array32(value: &Value) -> [u8; 32] {
    bytes(value).try_into().expect("32 bytes")
}

fn account(value: &Value) -> AccountId32 {
    AccountId32(array32(value))
}

/// Integers are written as decimal strings (u128 does not fit a JSON number).
fn int<T: std::str::FromStr>(value: &Value) -> T
where
    T::Err: std::fmt::Debug,
{
    text(value).parse().expect("decimal integer")
}

fn items(value: &Value) -> &Vec<Value> {
    value.as_array().expect("array")
}

fn key_type(value: &Value) -> KeyTypeId {
    KeyTypeId(
        text(value)
            .as_bytes()
            .try_into()
            .expect("4-letter key type"),
    )
}

fn session_keys(value: &Value) -> SessionKeys {
    SessionKeys {
        gran: array32(&value["grandpa"]),
        babe: array32(&value["babe"]),
        imon: array32(&value["im_online"]),
    }
}

#[test]
fn vectors_record_their_generator() {
    let doc = vectors();
    assert_eq!(doc["libraries"]["substrate-interface"], "1.8.1");
    assert!(doc["libraries"]["scalecodec"].is_string());
}

#[test]
fn hashers_match_substrate_interface() {
    let doc = vectors();
    for vector in list(&doc, "hashers") {
        let input = bytes(&vector["input"]);
        let expected = bytes(&vector["output"]);
        let actual = match text(&vector["hasher"]) {
            "twox_64" => hashing::twox_64(&input).to_vec(),
            "twox_128" => hashing::twox_128(&input).to_vec(),
            "twox_64_concat" => hashing::twox_64_concat(&input),
            "blake2_128" => hashing::blake2_128(&input).to_vec(),
            "blake2_128_concat" => hashing::blake2_128_concat(&input),
            "blake2_256" => hashing::blake2_256(&input).to_vec(),
            "identity" => hashing::identity(&input),
            other => panic!("unknown hasher {other}"),
        };
        assert_eq!(actual, expected, "{vector}");
    }
}

#[test]
fn storage_keys_match_substrate_interface() {
    let doc = vectors();
    let mut items_seen = std::collections::BTreeSet::new();
    for vector in list(&doc, "storage_keys") {
        let args = items(&vector["args"]);
        let era = |i: usize| -> u32 { args[i].as_u64().expect("era number") as u32 };
        let who = |i: usize| account(&args[i]);
        let item = text(&vector["item"]);
        let key = match item {
            "Babe.EpochStart" => keys::babe_epoch_start(),
            "Session.Validators" => keys::session_validators(),
            "Session.CurrentIndex" => keys::session_current_index(),
            "Session.QueuedKeys" => keys::session_queued_keys(),
            "Session.DisabledValidators" => keys::session_disabled_validators(),
            "Session.NextKeys" => keys::session_next_keys(&who(0)),
            "Session.KeyOwner" => keys::session_key_owner(key_type(&args[0]), &bytes(&args[1])),
            "Staking.ActiveEra" => keys::staking_active_era(),
            "Staking.CurrentEra" => keys::staking_current_era(),
            "Staking.HistoryDepth" => keys::staking_history_depth(),
            "Staking.Bonded" => keys::staking_bonded(&who(0)),
            "Staking.Ledger" => keys::staking_ledger(&who(0)),
            "Staking.Validators" => keys::staking_validators(&who(0)),
            "Staking.ErasValidatorReward" => keys::staking_eras_validator_reward(era(0)),
            "Staking.ErasRewardPoints" => keys::staking_eras_reward_points(era(0)),
            "Staking.ErasStakersOverview" => keys::staking_eras_stakers_overview(era(0), &who(1)),
            "Staking.ClaimedRewards" => keys::staking_claimed_rewards(era(0), &who(1)),
            "Staking.ErasStakers" => keys::staking_eras_stakers(era(0), &who(1)),
            other => panic!("unknown storage item {other}"),
        };
        assert_eq!(keys::to_hex(&key), text(&vector["key"]), "{vector}");
        items_seen.insert(item.to_owned());
    }
    assert_eq!(items_seen.len(), 18, "every storage item has vectors");
}

#[test]
fn ss58_matches_scalecodec() {
    let doc = vectors();
    for vector in list(&doc, "ss58") {
        let who = account(&vector["account"]);
        let prefix = vector["prefix"].as_u64().expect("prefix") as u16;
        let address = text(&vector["address"]);
        assert_eq!(ss58::encode(&who, prefix).unwrap(), address, "{vector}");
        assert_eq!(ss58::decode(address).unwrap(), (who, prefix), "{vector}");
    }
    for vector in list(&doc, "ss58_invalid") {
        let address = text(&vector["address"]);
        assert!(
            ss58::decode(address).is_err(),
            "accepted {address} ({})",
            vector["why"]
        );
    }
}

#[test]
fn session_keys_and_keystore_names_match() {
    let doc = vectors();
    for vector in list(&doc, "session_keys") {
        let keys = split_session_keys(text(&vector["hex"])).unwrap();
        assert_eq!(keys.gran, array32(&vector["gran"]));
        assert_eq!(keys.babe, array32(&vector["babe"]));
        assert_eq!(keys.imon, array32(&vector["imon"]));
        assert_eq!(keys.to_hex(), text(&vector["hex"]));
    }
    for vector in list(&doc, "keystore_names") {
        let name = text(&vector["name"]);
        let entry = parse_keystore_file_name(name).unwrap();
        assert_eq!(entry.key_type, key_type(&vector["key_type"]));
        assert_eq!(entry.public_key, bytes(&vector["public_key"]));
        assert_eq!(keystore_file_name(entry.key_type, &entry.public_key), name);
    }
}

/// Decodes `encoded` as `T`, compares with the value the vector describes, and encodes
/// it back to the same bytes.
fn check<T: Decode + Encode + PartialEq + std::fmt::Debug>(vector: &Value, expected: T) {
    let encoded = bytes(&vector["encoded"]);
    let type_name = text(&vector["type"]);
    let decoded: T = decode_all(&encoded, type_name).unwrap_or_else(|e| panic!("{e}: {vector}"));
    assert_eq!(decoded, expected, "{vector}");
    assert_eq!(expected.encode(), encoded, "encoding {vector}");
}

fn u32_list(value: &Value) -> Vec<u32> {
    items(value).iter().map(int).collect()
}

fn ledger(value: &Value) -> StakingLedger {
    StakingLedger {
        stash: account(&value["stash"]),
        total: int(&value["total"]),
        active: int(&value["active"]),
        unlocking: items(&value["unlocking"])
            .iter()
            .map(|chunk| UnlockChunk {
                value: int(&chunk["value"]),
                era: int(&chunk["era"]),
            })
            .collect(),
        legacy_claimed_rewards: u32_list(&value["legacy_claimed_rewards"]),
    }
}

#[test]
fn scale_matches_scalecodec() {
    let doc = vectors();
    let mut types_seen = std::collections::BTreeSet::new();
    for vector in list(&doc, "scale") {
        let value = &vector["value"];
        let type_name = text(&vector["type"]);
        match type_name {
            "u32" => check::<u32>(vector, int(value)),
            "u64" => check::<u64>(vector, int(value)),
            "u128" => check::<u128>(vector, int(value)),
            "bool" => check::<bool>(vector, value.as_bool().expect("bool")),
            "Compact<u32>" => check(vector, Compact::<u32>(int(value))),
            "Compact<u64>" => check(vector, Compact::<u64>(int(value))),
            "Compact<u128>" => check(vector, Compact::<u128>(int(value))),
            "Option<u64>" => check::<Option<u64>>(vector, (!value.is_null()).then(|| int(value))),
            "Vec<u32>" | "ClaimedRewards" => check(vector, u32_list(value)),
            "DisabledValidators" => check(vector, DisabledValidators::Indices(u32_list(value))),
            "DisabledValidatorsWithSeverity" => check(
                vector,
                DisabledValidators::WithSeverity(
                    items(value)
                        .iter()
                        .map(|pair| (int(&pair[0]), int(&pair[1])))
                        .collect(),
                ),
            ),
            "AccountId32" => check(vector, account(value)),
            "KeyOwnerKey" => check(
                vector,
                (
                    KeyTypeId(bytes(&value[0]).try_into().expect("4 bytes")),
                    Bytes(bytes(&value[1])),
                ),
            ),
            "SessionKeys" => check(vector, session_keys(value)),
            "SessionValidators" => {
                check::<Vec<AccountId32>>(vector, items(value).iter().map(account).collect())
            }
            "QueuedKeys" => check::<Vec<(AccountId32, SessionKeys)>>(
                vector,
                items(value)
                    .iter()
                    .map(|pair| (account(&pair[0]), session_keys(&pair[1])))
                    .collect(),
            ),
            "ActiveEraInfo" => check(
                vector,
                ActiveEraInfo {
                    index: int(&value["index"]),
                    start: (!value["start"].is_null()).then(|| int(&value["start"])),
                },
            ),
            "StakingLedger" => check(vector, ledger(value)),
            "EraRewardPoints" => check(
                vector,
                EraRewardPoints {
                    total: int(&value["total"]),
                    individual: items(&value["individual"])
                        .iter()
                        .map(|pair| (account(&pair[0]), int(&pair[1])))
                        .collect::<BTreeMap<_, _>>(),
                },
            ),
            "PagedExposureMetadata" => check(
                vector,
                PagedExposureMetadata {
                    total: int(&value["total"]),
                    own: int(&value["own"]),
                    nominator_count: int(&value["nominator_count"]),
                    page_count: int(&value["page_count"]),
                },
            ),
            "Exposure" => check(
                vector,
                Exposure {
                    total: int(&value["total"]),
                    own: int(&value["own"]),
                    others: items(&value["others"])
                        .iter()
                        .map(|other| IndividualExposure {
                            who: account(&other["who"]),
                            value: int(&other["value"]),
                        })
                        .collect(),
                },
            ),
            "ValidatorPrefs" => check(
                vector,
                ValidatorPrefs {
                    commission: int(&value["commission"]),
                    blocked: value["blocked"].as_bool().expect("bool"),
                },
            ),
            "EpochStart" => check::<(u32, u32)>(vector, (int(&value[0]), int(&value[1]))),
            other => panic!("unknown SCALE type {other}"),
        }
        types_seen.insert(type_name.to_owned());
    }
    assert_eq!(
        types_seen.len(),
        24,
        "every SCALE type has vectors: {types_seen:?}"
    );
}

#[test]
fn truncating_any_scale_vector_is_an_error_and_so_is_a_trailing_byte() {
    // Every proper prefix of every encoding must fail to decode as the same type, and
    // one extra byte must too: the decoders consume exactly what the layout says.
    let doc = vectors();
    for vector in list(&doc, "scale") {
        let encoded = bytes(&vector["encoded"]);
        let type_name = text(&vector["type"]);
        let decodes = |data: &[u8]| -> bool {
            match type_name {
                "u32" => decode_all::<u32>(data, type_name).is_ok(),
                "u64" => decode_all::<u64>(data, type_name).is_ok(),
                "u128" => decode_all::<u128>(data, type_name).is_ok(),
                "bool" => decode_all::<bool>(data, type_name).is_ok(),
                "Compact<u32>" => decode_all::<Compact<u32>>(data, type_name).is_ok(),
                "Compact<u64>" => decode_all::<Compact<u64>>(data, type_name).is_ok(),
                "Compact<u128>" => decode_all::<Compact<u128>>(data, type_name).is_ok(),
                "Option<u64>" => decode_all::<Option<u64>>(data, type_name).is_ok(),
                "Vec<u32>" | "ClaimedRewards" => decode_all::<Vec<u32>>(data, type_name).is_ok(),
                // A cut can fit the other layout (a 5-byte prefix of one (u32, Perbill)
                // entry is a valid Vec<u32> of one index), so only the same value counts.
                "DisabledValidators" | "DisabledValidatorsWithSeverity" => {
                    decode_all::<DisabledValidators>(data, type_name)
                        .is_ok_and(|decoded| decoded.encode() == encoded)
                }
                "AccountId32" => decode_all::<AccountId32>(data, type_name).is_ok(),
                "KeyOwnerKey" => decode_all::<(KeyTypeId, Bytes)>(data, type_name).is_ok(),
                "SessionKeys" => decode_all::<SessionKeys>(data, type_name).is_ok(),
                "SessionValidators" => decode_all::<Vec<AccountId32>>(data, type_name).is_ok(),
                "QueuedKeys" => {
                    decode_all::<Vec<(AccountId32, SessionKeys)>>(data, type_name).is_ok()
                }
                "EpochStart" => decode_all::<(u32, u32)>(data, type_name).is_ok(),
                "ActiveEraInfo" => decode_all::<ActiveEraInfo>(data, type_name).is_ok(),
                "StakingLedger" => decode_all::<StakingLedger>(data, type_name).is_ok(),
                "EraRewardPoints" => decode_all::<EraRewardPoints>(data, type_name).is_ok(),
                "PagedExposureMetadata" => {
                    decode_all::<PagedExposureMetadata>(data, type_name).is_ok()
                }
                "Exposure" => decode_all::<Exposure>(data, type_name).is_ok(),
                "ValidatorPrefs" => decode_all::<ValidatorPrefs>(data, type_name).is_ok(),
                other => panic!("unknown SCALE type {other}"),
            }
        };
        for cut in 0..encoded.len() {
            assert!(
                !decodes(&encoded[..cut]),
                "{type_name}: prefix of {cut} bytes decoded"
            );
        }
        let mut longer = encoded.clone();
        longer.push(0);
        assert!(!decodes(&longer), "{type_name}: trailing byte accepted");
    }
}
