//! The network: the libp2p stack and what a host costs before it shows the key, mDNS
//! discovery, and the pure bookkeeping of who is a member and who is only seen on the LAN.
//! The event loop's `net.rs` drives these; its `routes.rs` and `roster.rs` keep the
//! loop's own maps.

pub(crate) mod behaviour;
pub(crate) mod discovery;
pub(crate) mod limits;
pub(crate) mod members;
pub(crate) mod sightings;
