//! Admission of connections that have not authenticated yet (TCP accepted,
//! TLS, upgrade and `hello` still to come).
//!
//! Such connections must never keep authenticated agents out. Refusing new
//! ones at a cap would do exactly that (an attacker holds the cap with idle
//! sockets), so the cap evicts instead: when one address holds
//! [`PER_ADDRESS`] unauthenticated connections, or all addresses together
//! [`TOTAL`], the oldest one (of that address first) is shut down to make
//! room, provided it has waited at least [`MIN_AGE`]. A real agent completes
//! its handshake in milliseconds, so it cannot be the oldest for long; an
//! idle socket always is. A burst of real agents (a fleet reconnecting after
//! a server restart, or many agents behind one NAT address) is all young:
//! it is let in over the per-address cap rather than cut; only [`TOTAL`] is
//! hard, and a newcomer finding it full of young connections is closed (it
//! reconnects with backoff). Every phase also has a short deadline (see
//! `conn.rs`), so idle sockets die on their own too.
use std::collections::BTreeMap;
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Unauthenticated connections from one IP address, at most.
pub const PER_ADDRESS: usize = 64;
/// Unauthenticated connections in all, at most.
pub const TOTAL: usize = 4096;
/// A connection younger than this is never evicted: it may be an agent in
/// the middle of its handshake.
pub const MIN_AGE: Duration = Duration::from_millis(500);

struct Waiting {
    address: IpAddr,
    since: Instant,
    /// A second handle to the socket, to shut it down when evicted.
    socket: TcpStream,
}

#[derive(Default)]
pub struct Admission {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    /// Oldest first (ids only grow).
    waiting: BTreeMap<u64, Waiting>,
}

/// A connection's place until it authenticates; dropping it frees the place.
pub struct Ticket<'a> {
    admission: &'a Admission,
    id: u64,
}

impl Ticket<'_> {
    /// Whether this connection was shut down to make room for another.
    pub fn was_evicted(&self) -> bool {
        !self.admission.lock().waiting.contains_key(&self.id)
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut inner = self.admission.lock();
        inner.waiting.remove(&self.id);
    }
}

impl Admission {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admit `socket`, evicting the oldest unauthenticated connection (of
    /// its address first) when a cap is reached. Returns the ticket and how
    /// many were evicted, or an error when every place is taken by young
    /// connections.
    pub fn admit(&self, socket: &TcpStream) -> std::io::Result<(Ticket<'_>, usize)> {
        let address = socket.peer_addr()?.ip();
        let handle = socket.try_clone()?;
        let mut inner = self.lock();
        let now = Instant::now();
        let old_enough = |w: &Waiting| now.duration_since(w.since) >= MIN_AGE;
        let mut evicted = 0;
        let from_address = inner
            .waiting
            .values()
            .filter(|w| w.address == address)
            .count();
        if from_address >= PER_ADDRESS {
            let oldest = inner
                .waiting
                .iter()
                .find(|(_, w)| w.address == address)
                .filter(|(_, w)| old_enough(w))
                .map(|(id, _)| *id);
            evicted += oldest.map_or(0, |id| evict(&mut inner, id));
        }
        if inner.waiting.len() >= TOTAL {
            let oldest = inner
                .waiting
                .iter()
                .next()
                .filter(|(_, w)| old_enough(w))
                .map(|(id, _)| *id);
            match oldest {
                Some(id) => evicted += evict(&mut inner, id),
                None => {
                    return Err(std::io::Error::other(
                        "too many connections are being set up at once",
                    ));
                }
            }
        }
        inner.next += 1;
        let id = inner.next;
        inner.waiting.insert(
            id,
            Waiting {
                address,
                since: now,
                socket: handle,
            },
        );
        Ok((
            Ticket {
                admission: self,
                id,
            },
            evicted,
        ))
    }

    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }
}

fn evict(inner: &mut Inner, id: u64) -> usize {
    match inner.waiting.remove(&id) {
        Some(w) => {
            // Its thread's next read fails and it ends on its own.
            let _ = w.socket.shutdown(Shutdown::Both);
            1
        }
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    #[test]
    fn a_full_address_evicts_its_oldest_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let admission = Admission::default();
        let mut clients = Vec::new();
        let mut tickets = Vec::new();
        for _ in 0..PER_ADDRESS {
            clients.push(TcpStream::connect(addr).unwrap());
            let (server_side, _) = listener.accept().unwrap();
            let (ticket, evicted) = admission.admit(&server_side).unwrap();
            assert_eq!(evicted, 0);
            tickets.push((ticket, server_side));
        }
        // All young: a burst is let in over the per-address cap.
        let _burst = TcpStream::connect(addr).unwrap();
        let (server_side, _) = listener.accept().unwrap();
        let (burst_ticket, evicted) = admission.admit(&server_side).unwrap();
        assert_eq!(evicted, 0);
        drop(burst_ticket);
        std::thread::sleep(MIN_AGE);
        let _late = TcpStream::connect(addr).unwrap();
        let (server_side, _) = listener.accept().unwrap();
        let (_ticket, evicted) = admission.admit(&server_side).unwrap();
        assert_eq!(evicted, 1);
        assert_eq!(admission.waiting(), PER_ADDRESS);
        // The oldest was shut down: its client sees the end of the stream.
        clients[0]
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(clients[0].read(&mut buf).unwrap(), 0);
        assert!(tickets[0].0.was_evicted(), "its ticket knows why");
        assert!(!tickets[1].0.was_evicted());
        drop(tickets);
        assert_eq!(admission.waiting(), 1, "dropped tickets free their places");
    }
}
