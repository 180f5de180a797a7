//! LAN discovery with mDNS/DNS-SD (`mdns-sd`), bridged into the event loop.
//!
//! A node registers one DNS-SD service instance of type `_mesh._tcp.local.`, so
//! `avahi-browse -r _mesh._tcp` lists it: its SRV port is the node's libp2p TCP port, its
//! A records every IPv4 address of the host, and its TXT record the [`Advert`], whose
//! format is [`crate::protocol::advert`]'s. Junk records are logged and dropped.
//!
//! mdns-sd runs its own thread and hands events over a channel; a bridge thread moves them
//! into a bounded tokio channel, so a flood of records slows mDNS down instead of growing a
//! queue. The bridge passes on at most [`RECORDS_PER_SECOND`] resolved records a second
//! (bursts of [`RECORD_BURST`]) and drops the rest, counting them in one warning every
//! [`FLOOD_REPORT`]: a host sending junk or a storm of records costs the event loop a
//! bounded amount, and real nodes, which announce again, still get through. mdns-sd itself
//! caches every instance it resolves until the TTL its sender chose; once one daemon has
//! seen [`MAX_INSTANCES`] of them the bridge replaces it with a fresh one, which bounds
//! that cache too.

use crate::core::rate::TokenBucket;
pub(crate) use crate::protocol::advert::Advert;
use crate::protocol::advert::{Junk, SERVICE_TYPE};
use anyhow::{Context, Result};
use libp2p::PeerId;
use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;

/// Resolved records a second passed to the event loop, at most.
pub(crate) const RECORDS_PER_SECOND: f64 = 20.0;
/// How many records may pass at once before the rate applies.
pub(crate) const RECORD_BURST: f64 = 64.0;
/// Distinct instances one mDNS daemon may have resolved before it is replaced by a fresh
/// one: mdns-sd caches each until its TTL, so this bounds its memory. A LAN of mesh
/// nodes has far fewer.
pub(crate) const MAX_INSTANCES: usize = 1024;
/// How often a flood of records is reported.
const FLOOD_REPORT: std::time::Duration = std::time::Duration::from_secs(10);

/// The longest a leaving node waits for its mDNS goodbye to go out.
const GOODBYE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Capacity of the channel from the mDNS thread to the event loop.
pub(crate) const CHANNEL_CAPACITY: usize = 64;

/// A node seen on the LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub fullname: String,
    pub peer_id: PeerId,
    pub name: String,
    pub addrs: Vec<Ipv4Addr>,
    pub port: u16,
    pub fingerprint: String,
    pub protocol: u32,
    pub version: String,
}

#[derive(Debug, Clone)]
pub(crate) enum DiscoveryEvent {
    Found(Record),
    Removed { fullname: String },
}

/// A running mDNS responder and browser.
pub(crate) struct Discovery {
    shared: Arc<Mutex<Daemon>>,
}

/// The mDNS daemon of the moment: the bridge starts a fresh one to drop a flooded cache.
struct Daemon {
    daemon: ServiceDaemon,
    registered: Option<String>,
    /// Set by [`Discovery::shutdown`]: no new daemon may start after it.
    stopping: bool,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery").finish_non_exhaustive()
    }
}

/// Starts a daemon that announces `advert` (if any) and browses for mesh nodes.
fn open(advert: Option<&Advert>) -> Result<(Daemon, mdns_sd::Receiver<ServiceEvent>)> {
    let daemon = ServiceDaemon::new().context("starting mDNS (is UDP port 5353 usable?)")?;
    let mut registered = None;
    if let Some(a) = advert {
        let info = service_info(a)?;
        registered = Some(info.get_fullname().to_string());
        daemon.register(info).context("registering the mDNS service")?;
    }
    let events = daemon.browse(SERVICE_TYPE).context("browsing mDNS")?;
    Ok((Daemon { daemon, registered, stopping: false }, events))
}

/// How a daemon's stream of events ended.
enum Ended {
    /// The daemon stopped, or the event loop is gone.
    Closed,
    /// More than [`MAX_INSTANCES`] instances were seen: the daemon's cache holds them all.
    Flooded,
}

/// Moves one daemon's events to the event loop, at most [`RECORDS_PER_SECOND`].
fn bridge(
    events: &mdns_sd::Receiver<ServiceEvent>,
    tx: &mpsc::Sender<DiscoveryEvent>,
    bucket: &mut TokenBucket,
) -> Ended {
    let (mut dropped, mut reported) = (0u64, None::<Instant>);
    let mut instances = std::collections::HashSet::new();
    while let Ok(ev) = events.recv() {
        let now = Instant::now();
        if let ServiceEvent::ServiceResolved(r) = &ev {
            instances.insert(r.fullname.clone());
            if instances.len() > MAX_INSTANCES {
                return Ended::Flooded;
            }
            if !bucket.take(now) {
                dropped += 1;
                if reported.is_none_or(|at| now.duration_since(at) >= FLOOD_REPORT) {
                    tracing::warn!(dropped, "a flood of mDNS records; dropping those over the limit");
                    (dropped, reported) = (0, Some(now));
                }
                continue;
            }
        }
        let out = match ev {
            ServiceEvent::ServiceResolved(r) => match parse(&r) {
                Ok(rec) => DiscoveryEvent::Found(rec),
                Err(why) => {
                    tracing::debug!(fullname = %r.fullname, %why, "junk mDNS record dropped");
                    continue;
                }
            },
            ServiceEvent::ServiceRemoved(_, fullname) => DiscoveryEvent::Removed { fullname },
            _ => continue,
        };
        if tx.blocking_send(out).is_err() {
            return Ended::Closed;
        }
    }
    Ended::Closed
}

impl Discovery {
    /// Starts browsing (and, with an advert, announcing). Events arrive on the returned
    /// receiver until [`Discovery::shutdown`].
    pub(crate) fn start(advert: Option<&Advert>) -> Result<(Self, mpsc::Receiver<DiscoveryEvent>)> {
        let (daemon, mut events) = open(advert)?;
        let shared = Arc::new(Mutex::new(daemon));
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let (advert, bridged) = (advert.cloned(), shared.clone());
        std::thread::Builder::new()
            .name("mesh-mdns-bridge".into())
            .spawn(move || {
                let mut bucket = TokenBucket::new(RECORDS_PER_SECOND, RECORD_BURST, Instant::now());
                while let Ended::Flooded = bridge(&events, &tx, &mut bucket) {
                    // mdns-sd keeps every instance it resolved until its TTL, which the
                    // sender picks: a new daemon is the only way to let go of them.
                    let mut current = lock(&bridged);
                    if current.stopping {
                        return;
                    }
                    tracing::warn!("over {MAX_INSTANCES} mDNS instances seen: restarting mDNS to drop them");
                    let _ = current.daemon.shutdown();
                    match open(advert.as_ref()) {
                        Ok((fresh, fresh_events)) => (*current, events) = (fresh, fresh_events),
                        Err(e) => {
                            tracing::warn!(%e, "cannot restart mDNS; discovery stops (--peer still works)");
                            return;
                        }
                    }
                }
            })
            .context("starting the mDNS bridge thread")?;
        Ok((Self { shared }, rx))
    }

    /// Says goodbye on the LAN (an mDNS unregister, so others drop the record at once) and
    /// stops the daemon. Waits at most a second for the goodbye to go out.
    pub(crate) fn shutdown(self) {
        let mut current = lock(&self.shared);
        current.stopping = true;
        if let Some(name) = &current.registered
            && let Ok(rx) = current.daemon.unregister(name)
        {
            let _ = rx.recv_timeout(GOODBYE_WAIT);
        }
        let _ = current.daemon.shutdown();
    }
}

fn lock(d: &Mutex<Daemon>) -> std::sync::MutexGuard<'_, Daemon> {
    d.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn service_info(a: &Advert) -> Result<ServiceInfo> {
    let id = a.peer_id.to_base58();
    let short = &id[id.len().saturating_sub(6)..];
    let host: String = a.name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let instance = format!("{}-{short}", a.name);
    let props = a.txt();
    let mut info = ServiceInfo::new(SERVICE_TYPE, &instance, &format!("{host}-{short}.local."), "", a.port, &props[..])
        .context("building the mDNS record")?;
    // Probing (RFC 6762 §8.1) guards against name clashes and delays the first announce by
    // ~750 ms; the peer id suffix already makes our names unique.
    info.set_requires_probe(false);
    Ok(info.enable_addr_auto())
}

/// Checks a peer's record. Errors say why it is junk.
fn parse(r: &mdns_sd::ResolvedService) -> Result<Record, Junk> {
    let a = Advert::parse(|k| r.get_property_val_str(k), r.port)?;
    let mut addrs: Vec<Ipv4Addr> = r.get_addresses_v4().into_iter().collect();
    addrs.sort();
    Ok(Record {
        fullname: r.fullname.clone(),
        peer_id: a.peer_id,
        name: a.name,
        addrs,
        port: a.port,
        fingerprint: a.fingerprint,
        protocol: a.protocol,
        version: a.version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::advert::MAX_TXT_VALUE;

    fn resolved(props: &[(&str, &str)], port: u16) -> mdns_sd::ResolvedService {
        ServiceInfo::new(SERVICE_TYPE, "x", "x.local.", "198.18.0.9", port, props).unwrap().as_resolved_service()
    }

    #[test]
    fn good_record_parses() {
        let id = PeerId::random().to_base58();
        let r = parse(&resolved(&[("id", &id), ("pv", "1"), ("kf", "open"), ("name", "pi")], 4877)).unwrap();
        assert_eq!(r.peer_id.to_base58(), id);
        assert_eq!((r.port, r.protocol, r.name.as_str()), (4877, 1, "pi"));
        assert_eq!(r.addrs, vec![Ipv4Addr::new(198, 18, 0, 9)]);
    }

    #[test]
    fn junk_records_are_refused() {
        let id = PeerId::random().to_base58();
        let long = "k".repeat(MAX_TXT_VALUE + 1);
        for (props, port, why) in [
            (vec![("pv", "1"), ("kf", "open")], 4877, Junk::NoId),
            (vec![("id", "not-a-peer"), ("pv", "1"), ("kf", "open")], 4877, Junk::BadPeerId),
            (vec![("id", id.as_str()), ("pv", "x"), ("kf", "open")], 4877, Junk::BadProtocol),
            (vec![("id", id.as_str()), ("pv", "1")], 4877, Junk::NoFingerprint),
            (vec![("id", id.as_str()), ("pv", "1"), ("kf", long.as_str())], 4877, Junk::NoFingerprint),
            (vec![("id", id.as_str()), ("pv", "1"), ("kf", "open")], 0, Junk::NoPort),
        ] {
            assert_eq!(parse(&resolved(&props, port)), Err(why));
        }
    }
}
