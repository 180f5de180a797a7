//! What a host can cost a node before it has shown the key.
//!
//! A connection costs a node a socket, a task and some buffers from its first packet, and
//! only pnet's first bytes tell whether the other side has the key (a wrong key fails
//! there, an honest stranger's libp2p fails at Noise). Until then, and for peers that
//! connect without any key on an open mesh, these bounds hold:
//!
//! * at most [`MAX_PENDING_INCOMING`] inbound connections in their handshake at once, and
//!   at most [`MAX_PENDING_PER_IP`] of them from one address, so one host cannot take the
//!   whole budget and keep members out;
//! * each handshake ends within `behaviour::HANDSHAKE_TIMEOUT`, or the connection is
//!   dropped;
//! * at most [`MAX_ESTABLISHED_INCOMING`] established inbound connections, and
//!   [`MAX_ESTABLISHED_PER_PEER`] per peer id.
//!
//! A connection over a bound is refused at once, before any handshake work. mDNS records
//! have their own bound, in `discovery`.

use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr, multiaddr::Protocol};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
    dummy,
};
use libp2p::{PeerId, connection_limits};
use std::collections::HashMap;
use std::net::IpAddr;
use std::task::{Context, Poll};

/// Inbound connections in their handshake at once, from everyone.
pub(crate) const MAX_PENDING_INCOMING: u32 = 32;
/// Inbound connections in their handshake at once from one IP address.
pub(crate) const MAX_PENDING_PER_IP: usize = 8;
/// Established inbound connections: far above any LAN's members.
pub(crate) const MAX_ESTABLISHED_INCOMING: u32 = 256;
/// Established connections to one peer (two nodes that dial each other at once hold two).
pub(crate) const MAX_ESTABLISHED_PER_PEER: u32 = 4;

/// libp2p's global limits, set to mesh's bounds.
pub(crate) fn global() -> connection_limits::Behaviour {
    connection_limits::Behaviour::new(
        connection_limits::ConnectionLimits::default()
            .with_max_pending_incoming(Some(MAX_PENDING_INCOMING))
            .with_max_established_incoming(Some(MAX_ESTABLISHED_INCOMING))
            .with_max_established_per_peer(Some(MAX_ESTABLISHED_PER_PEER)),
    )
}

/// A host went over [`MAX_PENDING_PER_IP`].
#[derive(Debug, thiserror::Error)]
#[error("{ip} already has {limit} connections in their handshake")]
pub(crate) struct TooManyFromOneHost {
    pub ip: IpAddr,
    pub limit: usize,
}

/// Counts inbound connections in their handshake by remote IP, and refuses one over the
/// limit (a behaviour with no protocol of its own).
#[derive(Debug)]
pub(crate) struct PendingPerIp {
    limit: usize,
    pending: HashMap<ConnectionId, IpAddr>,
    per_ip: HashMap<IpAddr, usize>,
}

impl PendingPerIp {
    pub(crate) fn new(limit: usize) -> Self {
        Self { limit, pending: HashMap::new(), per_ip: HashMap::new() }
    }

    /// Admits connection `id` from `ip`, or refuses it.
    fn admit(&mut self, id: ConnectionId, ip: IpAddr) -> Result<(), TooManyFromOneHost> {
        let n = self.per_ip.entry(ip).or_default();
        if *n >= self.limit {
            return Err(TooManyFromOneHost { ip, limit: self.limit });
        }
        *n += 1;
        self.pending.insert(id, ip);
        Ok(())
    }

    /// Connection `id` finished its handshake, or failed it.
    fn release(&mut self, id: ConnectionId) {
        let Some(ip) = self.pending.remove(&id) else { return };
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// Connections in their handshake now, over all hosts.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.pending.len()
    }
}

fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

impl NetworkBehaviour for PendingPerIp {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = std::convert::Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        match ip_of(remote) {
            Some(ip) => self.admit(id, ip).map_err(ConnectionDenied::new),
            None => Ok(()),
        }
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        _peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.release(id);
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ListenFailure(f) => self.release(f.connection_id),
            // Another behaviour may refuse a connection after this one admitted it.
            FromSwarm::ConnectionEstablished(e) => self.release(e.connection_id),
            _ => {}
        }
    }

    fn on_connection_handler_event(&mut self, _: PeerId, _: ConnectionId, event: THandlerOutEvent<Self>) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_host_cannot_take_every_handshake_slot() {
        let mut p = PendingPerIp::new(2);
        let (a, b): (IpAddr, IpAddr) = ("198.18.0.9".parse().unwrap(), "198.18.0.2".parse().unwrap());
        let ids: Vec<ConnectionId> = (0..5).map(|_| ConnectionId::new_unchecked(fresh_id())).collect();
        assert!(p.admit(ids[0], a).is_ok());
        assert!(p.admit(ids[1], a).is_ok());
        let refused = p.admit(ids[2], a).unwrap_err();
        assert_eq!((refused.ip, refused.limit), (a, 2));
        // Another host still gets in.
        assert!(p.admit(ids[3], b).is_ok());
        // A finished handshake frees its slot, once.
        p.release(ids[0]);
        p.release(ids[0]);
        assert!(p.admit(ids[4], a).is_ok());
        assert!(p.admit(ids[2], a).is_err());
        assert_eq!(p.pending(), 3);
        for id in [ids[1], ids[3], ids[4]] {
            p.release(id);
        }
        assert_eq!(p.pending(), 0);
        assert!(p.per_ip.is_empty(), "no counts left behind: {:?}", p.per_ip);
    }

    fn fresh_id() -> usize {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(1_000_000);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    #[test]
    fn the_remote_ip_is_read_from_the_address() {
        let addr: Multiaddr = "/ip4/198.18.0.7/tcp/4877".parse().unwrap();
        assert_eq!(ip_of(&addr), Some("198.18.0.7".parse().unwrap()));
        assert_eq!(ip_of(&"/dns4/pi.local/tcp/1".parse().unwrap()), None);
    }
}
