//! The cancel-key registry: maps the key data pgward gave a client to the real
//! upstream backend, so a CancelRequest arriving on any worker reaches the right
//! server process. Touched at session start and end and on cancel only, never
//! per message.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};

use crate::auth::scram::{ct_eq, random_bytes};

/// Where a cancel for one session must go.
#[derive(Debug, Clone)]
pub struct CancelTarget {
    /// The secret pgward handed the client.
    pub client_secret: [u8; 4],
    /// The upstream server address.
    pub upstream: SocketAddr,
    /// The upstream backend's process id.
    pub upstream_pid: u32,
    /// The upstream backend's secret key.
    pub upstream_secret: Vec<u8>,
}

fn registry() -> &'static Mutex<HashMap<u32, CancelTarget>> {
    static REGISTRY: OnceLock<Mutex<HashMap<u32, CancelTarget>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// A registered session's key; unregisters itself when dropped.
#[derive(Debug)]
pub struct CancelKey {
    /// The process id pgward reports to the client.
    pub pid: u32,
    /// The secret pgward reports to the client.
    pub secret: [u8; 4],
}

impl CancelKey {
    /// Registers an upstream backend and returns fresh client-facing key data.
    pub fn register(upstream: SocketAddr, upstream_pid: u32, upstream_secret: &[u8]) -> CancelKey {
        let secret = random_bytes::<4>();
        let mut map = registry().lock().unwrap_or_else(|p| p.into_inner());
        // The server's own pid where it is free, so what the client sees
        // matches NOTIFY senders, pg_stat_activity and pg_backend_pid();
        // another upstream server's session may hold it, then a random one.
        // The secret is always pgward's: only pgward can cancel upstream.
        let pid = if upstream_pid != 0 && !map.contains_key(&upstream_pid) {
            upstream_pid
        } else {
            loop {
                // Positive, so clients that hold the pid in a signed int are happy.
                let pid = u32::from_be_bytes(random_bytes::<4>()) & 0x7fff_ffff;
                if pid != 0 && !map.contains_key(&pid) {
                    break pid;
                }
            }
        };
        map.insert(
            pid,
            CancelTarget {
                client_secret: secret,
                upstream,
                upstream_pid,
                upstream_secret: upstream_secret.to_vec(),
            },
        );
        CancelKey { pid, secret }
    }
}

impl Drop for CancelKey {
    fn drop(&mut self) {
        registry()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.pid);
    }
}

/// Finds the target of a CancelRequest, if the pid and secret match a session.
pub fn lookup(pid: u32, secret: &[u8]) -> Option<CancelTarget> {
    let map = registry().lock().unwrap_or_else(|p| p.into_inner());
    map.get(&pid)
        .filter(|t| ct_eq(&t.client_secret, secret))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_looks_up_and_forgets() {
        let addr: SocketAddr = "127.0.0.1:5432".parse().unwrap();
        let key = CancelKey::register(addr, 42, &[1, 2, 3, 4]);
        assert_eq!(key.pid, 42, "the server's pid where it is free");
        let other = CancelKey::register(addr, 42, &[5, 6, 7, 8]);
        assert_ne!(
            other.pid, 42,
            "a pid already in use is not handed out twice"
        );
        let t = lookup(key.pid, &key.secret).unwrap();
        assert_eq!(
            (t.upstream_pid, t.upstream_secret.as_slice()),
            (42, &[1u8, 2, 3, 4][..])
        );
        let mut wrong = key.secret;
        wrong[0] ^= 1;
        assert!(lookup(key.pid, &wrong).is_none());
        let pid = key.pid;
        drop(key);
        assert!(lookup(pid, &[0; 4]).is_none());
    }
}
