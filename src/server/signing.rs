//! Signed commands, server side: the server is a relay that holds commands
//! until operators signed them; it never holds a ctl user's private key.
//!
//! - `warden server --operator-key FILE`: every command typed on stdin is
//!   signed with that key before it is sent.
//! - `warden ctl --key FILE <line>`: the server plans the line's commands
//!   and holds them; it answers with each one's canonical payload
//!   ([`operator_keys::signing_payload`]); the ctl client checks the payload
//!   against the line it was given, signs it, and sends `approve <id>` with
//!   the signature on a second connection.
//! - `signatures=K` on a line: the command is held until K distinct keys
//!   signed it; others add theirs with `warden ctl --key FILE approve <id>`
//!   (or `approve <id>` at a prompt started with --operator-key).
//!
//! Invariants: a held command is never recorded nor sent before it has its
//! signatures; the server checks each signature against the payload before
//! counting it (garbage is refused, not relayed); at most
//! [`MAX_PENDING`] commands are held, each at most [`HOLD`] (agents refuse a
//! command older than their `max_command_age_s`, 300 s by default).
use super::control::{PendingPayload, Update, exit};
use super::hub::Hub;
use crate::operator_keys::{self, CommandSignature};
use crate::protocol::{CommandRequest, now_ms};
use ring::signature::{ED25519, UnparsedPublicKey};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Commands held for signatures, at most.
pub const MAX_PENDING: usize = 256;
/// How long a command is held for its signatures.
pub const HOLD: Duration = Duration::from_secs(240);

pub struct Held {
    agent: String,
    request: CommandRequest,
    needed: usize,
    since: Instant,
}

/// The server's operator key (stdin) and the commands held for signatures.
#[derive(Default)]
pub struct Signing {
    pub key: Option<ring::signature::Ed25519KeyPair>,
    held: BTreeMap<String, Held>,
}

fn payload(agent: &str, r: &CommandRequest) -> Vec<u8> {
    operator_keys::signing_payload(agent, &r.id, &r.command, &r.target, &r.params, r.timestamp)
}

/// Whether `sig` is a valid Ed25519 signature by its key over `payload`.
fn verifies(payload: &[u8], sig: &CommandSignature) -> bool {
    match (
        operator_keys::parse_hex(&sig.key, 32),
        operator_keys::parse_hex(&sig.sig, 64),
    ) {
        (Some(key), Some(s)) => UnparsedPublicKey::new(&ED25519, &key)
            .verify(payload, &s)
            .is_ok(),
        _ => false,
    }
}

impl Hub {
    /// Load `--operator-key` (checked by the command line already); a key
    /// that fails now leaves stdin unable to issue (fail closed).
    pub(super) fn load_operator_key(&mut self) {
        if let Some(path) = &self.config.operator_key {
            match operator_keys::load(path) {
                Ok(pair) => {
                    crate::log::info(&format!(
                        "stdin commands are signed by {}",
                        operator_keys::public_hex(&pair)
                    ));
                    self.safety.signing.key = Some(pair);
                }
                Err(e) => crate::log::error(&e.to_string()),
            }
        }
    }

    /// Sign what can be signed here, and split `requests` into those to
    /// send now and those held for more signatures (announced).
    pub(super) fn sign_or_hold(
        &mut self,
        requests: Vec<(String, CommandRequest)>,
        wanted: Option<usize>,
    ) -> Vec<(String, CommandRequest)> {
        let ctl_signer = self.reply.is_some() && self.safety.ctl_key.is_some();
        let needed = match (wanted, ctl_signer) {
            (Some(k), _) => k,
            (None, true) => 1,
            (None, false) => 0,
        };
        if self.reply.is_none()
            && self.config.operator_key.is_some()
            && self.safety.signing.key.is_none()
        {
            self.refuse(
                exit::FAILED,
                "error: the operator key could not be loaded: nothing is sent",
            );
            return Vec::new();
        }
        let mut now = Vec::new();
        let mut announced = Vec::new();
        self.expire_held();
        for (agent, mut request) in requests {
            if self.reply.is_none()
                && let Some(key) = &self.safety.signing.key
            {
                request
                    .signatures
                    .push(operator_keys::sign(key, &payload(&agent, &request)));
            }
            if request.signatures.len() >= needed && !ctl_signer {
                now.push((agent, request));
                continue;
            }
            if self.safety.signing.held.len() >= MAX_PENDING {
                self.refuse(
                    exit::FAILED,
                    &format!(
                        "error: {MAX_PENDING} commands already wait for signatures; approve or \
                         let them expire ({} s) first",
                        HOLD.as_secs()
                    ),
                );
                continue;
            }
            announced.push(PendingPayload {
                id: request.id.clone(),
                agent: agent.clone(),
                payload: String::from_utf8_lossy(&payload(&agent, &request)).into_owned(),
            });
            self.say(&format!(
                "[{agent} {}] held: {} {} needs {needed} operator signature(s), has {}; \
                 co-sign with `warden ctl --key FILE approve {}` within {} s",
                request.id,
                request.command,
                request.target,
                request.signatures.len(),
                request.id,
                HOLD.as_secs()
            ));
            self.safety.signing.held.insert(
                request.id.clone(),
                Held {
                    agent,
                    request,
                    needed,
                    since: Instant::now(),
                },
            );
        }
        if !announced.is_empty() {
            self.tell_pending(announced);
        }
        now
    }

    fn tell_pending(&self, list: Vec<PendingPayload>) {
        if let Some(tx) = &self.reply {
            let _ = tx.send(Update::Pending(list));
        }
    }

    fn expire_held(&mut self) {
        let expired: Vec<String> = self
            .safety
            .signing
            .held
            .iter()
            .filter(|(_, h)| h.since.elapsed() > HOLD)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(h) = self.safety.signing.held.remove(&id) {
                self.out.line(&format!(
                    "[{} {id}] dropped: not signed by {} operator(s) within {} s",
                    h.agent,
                    h.needed,
                    HOLD.as_secs()
                ));
            }
        }
    }

    /// `approve <id>`: from ctl without a signature, the payload to sign;
    /// with one (or at a prompt holding a key), one more signature, and the
    /// command sent once it has them all.
    pub(super) fn approve(&mut self, id: &str) {
        self.expire_held();
        let Some(held) = self.safety.signing.held.get(id) else {
            self.refuse(
                exit::FAILED,
                &format!("error: no command {id} waits for signatures (expired, or sent)"),
            );
            return;
        };
        let bytes = payload(&held.agent, &held.request);
        let signature = if self.reply.is_some() {
            match self.safety.ctl_signature.take() {
                Some(sig) => sig,
                None => {
                    let list = vec![PendingPayload {
                        id: id.to_string(),
                        agent: held.agent.clone(),
                        payload: String::from_utf8_lossy(&bytes).into_owned(),
                    }];
                    if self.safety.ctl_key.is_none() {
                        self.refuse(
                            exit::USAGE,
                            "error: approve signs: use `warden ctl --key FILE approve <id>`",
                        );
                        return;
                    }
                    self.tell_pending(list);
                    return;
                }
            }
        } else {
            match &self.safety.signing.key {
                Some(key) => operator_keys::sign(key, &bytes),
                None => {
                    self.refuse(
                        exit::USAGE,
                        "error: this server holds no operator key (--operator-key); co-sign with \
                         `warden ctl --key FILE approve <id>`",
                    );
                    return;
                }
            }
        };
        if !verifies(&bytes, &signature) {
            self.refuse(
                exit::FAILED,
                &format!("error: that signature does not verify for command {id}: not added"),
            );
            return;
        }
        let Some(held) = self.safety.signing.held.get_mut(id) else {
            return;
        };
        if held
            .request
            .signatures
            .iter()
            .any(|s| s.key.eq_ignore_ascii_case(&signature.key))
        {
            self.refuse(
                exit::FAILED,
                &format!("error: {} already signed {id}", signature.key),
            );
            return;
        }
        if held.request.signatures.len() >= operator_keys::MAX_SIGNATURES {
            self.refuse(
                exit::FAILED,
                &format!("error: {id} has all the signatures it may carry"),
            );
            return;
        }
        held.request.signatures.push(signature.clone());
        let (have, needed) = (held.request.signatures.len(), held.needed.max(1));
        self.audit(json!({
            "ts": now_ms(), "action": "approve", "by": self.speaker(), "id": id,
            "key": signature.key, "signatures": have, "needed": needed,
        }));
        if have < needed {
            self.say(&format!(
                "{id}: {have} of {needed} signatures; waiting for more"
            ));
            return;
        }
        if let Some(held) = self.safety.signing.held.remove(id) {
            self.say(&format!("{id}: {have} of {needed} signatures; sending"));
            self.record_and_send(vec![(held.agent, held.request)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: &str, signed: bool) -> CommandRequest {
        CommandRequest {
            id: id.into(),
            command: "stop".into(),
            target: "n0".into(),
            params: Default::default(),
            timestamp: 1,
            signatures: if signed {
                vec![CommandSignature {
                    key: format!("0x{id}"),
                    sig: "0x00".into(),
                }]
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn only_a_signature_over_the_payload_by_its_key_verifies() {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let r = request("c1", false);
        let good = operator_keys::sign(&pair, &payload("a1", &r));
        assert!(verifies(&payload("a1", &r), &good));
        assert!(!verifies(&payload("a2", &r), &good), "another agent");
        let mut moved = r.clone();
        moved.target = "n1".into();
        assert!(!verifies(&payload("a1", &moved), &good), "another target");
        let garbage = CommandSignature {
            key: good.key.clone(),
            sig: "0x1234".into(),
        };
        assert!(!verifies(&payload("a1", &r), &garbage));
    }
}
