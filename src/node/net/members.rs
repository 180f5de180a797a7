//! Who is in the mesh, who is merely seen on the LAN, and whom to dial: a pure state
//! machine (time comes in as arguments) that the event loop feeds and asks.
//!
//! * A **member** is a peer that announced itself over an authenticated connection, with
//!   our protocol version. Members are what `mesh peers` lists and what scheduling uses.
//! * A **sighting** is an mDNS record. Sightings with another key fingerprint or protocol
//!   version are never dialed; they are counted so `mesh peers` can explain them.
//! * **Dialing**: both sides of a pair see each other's record, so only the side with the
//!   lower peer id dials; the other dials too only if no connection came within
//!   [`DIAL_GRACE`]. This keeps one connection per pair without a tie-break that can close
//!   both.
//! * A member leaves on `bye`, when its last connection closes, or after `expiry` without
//!   an announce (an unplugged cable sends nothing at all).

use crate::core::rate::TokenBucket;
use crate::core::{Facts, Status};
use crate::node::api::view::{PeerRow, PeerState};
use crate::node::net::discovery::Record;
use crate::node::net::sightings::addrs_of;
use crate::node::net::sightings::{refusal, sighting_row};
use crate::protocol::membership::{Announce, Health, JobSummary, PROTOCOL_VERSION};
use libp2p::{Multiaddr, PeerId};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How long the higher peer id waits for the lower one to dial before dialing itself.
pub(crate) const DIAL_GRACE: Duration = Duration::from_secs(3);

/// Most sightings kept; a LAN flooding junk records cannot grow memory past this.
pub(crate) const MAX_SIGHTINGS: usize = 1024;

/// Nodes that cannot join are reported (a warning in the log each) at most this many at
/// once, then one a minute: a host making up nodes cannot flood the log. All of them
/// still show in `mesh peers`.
const REFUSALS_SAID: f64 = 8.0;
const REFUSALS_SAID_PER_SECOND: f64 = 1.0 / 60.0;

#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub name: String,
    pub version: String,
    pub status: Status,
    pub facts: Facts,
    /// How its machine is doing, from its last announce.
    pub health: Option<Health>,
    /// Its own jobs, as it last told.
    pub jobs: Vec<JobSummary>,
    pub addr: Option<Multiaddr>,
    pub rtt: Option<Duration>,
    pub last_seen: Instant,
}

#[derive(Debug, Clone)]
struct Sighting {
    record: Record,
    first_seen: Instant,
    dialed: bool,
}

/// What the event loop should do after an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    Nothing,
    Dial(PeerId, Vec<Multiaddr>),
    /// The peer joined the mesh.
    Joined(PeerId),
    /// The peer left; tell the scheduler.
    Left(PeerId, Departure),
    /// A node first seen on the LAN that cannot join: another key or protocol version.
    Refused {
        name: String,
        state: PeerState,
        /// The node's release and wire protocol version, from its record.
        version: String,
        protocol: u32,
    },
}

/// How a member left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Departure {
    /// It said goodbye.
    Bye,
    /// Its last connection closed without a goodbye (a killed process, a crash).
    Disconnected,
    /// It went silent (an unplugged cable, a frozen machine).
    Silent,
}

impl Departure {
    /// It died rather than left: the statistics mark it "(lost)".
    pub(crate) fn is_lost(self) -> bool {
        self != Self::Bye
    }
}

#[derive(Debug)]
pub(crate) struct Membership {
    me: PeerId,
    fingerprint: String,
    members: BTreeMap<PeerId, Member>,
    sightings: BTreeMap<String, Sighting>,
    /// Peers that announced another protocol version over a connection.
    incompatible: BTreeSet<PeerId>,
    /// What leaving members last told of their jobs (a short-lived `mesh submit` node
    /// leaves as soon as its job ends), until the dashboard takes it; at most
    /// [`FAREWELLS_KEPT`].
    farewells: Vec<Farewell>,
    /// Bounds how many refused nodes are reported; made on the first.
    refusals: Option<TokenBucket>,
    /// Members heard of through others and dialed where they told: when each may be
    /// dialed again, and the wait after that. Kept while it is a member and not connected.
    told_dials: BTreeMap<PeerId, (Instant, Duration)>,
}

/// The wait before a member heard of through others is dialed again, doubling up to
/// [`TOLD_DIAL_MAX`], so one that cannot be reached (behind NAT, say) is not dialed at
/// each of its announces, which come several a second during a job.
pub(crate) const TOLD_DIAL_MIN: Duration = Duration::from_secs(5);
pub(crate) const TOLD_DIAL_MAX: Duration = Duration::from_secs(300);

/// Farewells kept until taken.
pub(crate) const FAREWELLS_KEPT: usize = 16;

/// The jobs a member told of in its goodbye.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Farewell {
    pub peer: PeerId,
    pub name: String,
    pub jobs: Vec<JobSummary>,
}

impl Membership {
    pub(crate) fn new(me: PeerId, fingerprint: String) -> Self {
        Self {
            me,
            fingerprint,
            members: BTreeMap::new(),
            sightings: BTreeMap::new(),
            incompatible: BTreeSet::new(),
            farewells: Vec::new(),
            refusals: None,
            told_dials: BTreeMap::new(),
        }
    }

    /// The goodbyes with jobs in them since the last call.
    pub(crate) fn take_farewells(&mut self) -> Vec<Farewell> {
        std::mem::take(&mut self.farewells)
    }

    pub(crate) fn members(&self) -> impl Iterator<Item = (&PeerId, &Member)> {
        self.members.iter()
    }

    /// Whether mDNS found `p`: it is on this node's LAN.
    pub(crate) fn sighted(&self, p: &PeerId) -> bool {
        self.sightings.values().any(|s| s.record.peer_id == *p)
    }

    pub(crate) fn is_member(&self, p: &PeerId) -> bool {
        self.members.contains_key(p)
    }

    /// An mDNS record arrived.
    pub(crate) fn on_record(&mut self, now: Instant, rec: Record, connected: bool) -> Decision {
        if rec.peer_id == self.me {
            return Decision::Nothing;
        }
        if self.sightings.len() >= MAX_SIGHTINGS && !self.sightings.contains_key(&rec.fullname) {
            return Decision::Nothing;
        }
        let refused = refusal(&rec, &self.fingerprint);
        let usable = refused.is_none();
        if let Some(state) = refused
            && !self.sightings.contains_key(&rec.fullname)
        {
            let (name, version, protocol) = (rec.name.clone(), rec.version.clone(), rec.protocol);
            self.sightings.insert(rec.fullname.clone(), Sighting { record: rec, first_seen: now, dialed: false });
            let said =
                self.refusals.get_or_insert_with(|| TokenBucket::new(REFUSALS_SAID_PER_SECOND, REFUSALS_SAID, now));
            return if said.take(now) {
                Decision::Refused { name, state, version, protocol }
            } else {
                Decision::Nothing
            };
        }
        let s = self.sightings.entry(rec.fullname.clone()).or_insert(Sighting {
            record: rec.clone(),
            first_seen: now,
            dialed: false,
        });
        if s.record.peer_id != rec.peer_id {
            // Same instance name, new identity: a different node took the name.
            *s = Sighting { record: rec.clone(), first_seen: now, dialed: false };
        }
        s.record = rec;
        if usable && !connected && self.me < s.record.peer_id {
            s.dialed = true;
            return Decision::Dial(s.record.peer_id, addrs_of(&s.record));
        }
        Decision::Nothing
    }

    pub(crate) fn on_record_removed(&mut self, fullname: &str) {
        self.sightings.remove(fullname);
    }

    /// Dials owed after the grace period: records whose lower-id side never dialed us.
    pub(crate) fn overdue_dials(
        &mut self,
        now: Instant,
        connected: impl Fn(&PeerId) -> bool,
    ) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let fp = &self.fingerprint;
        self.sightings
            .values_mut()
            .filter(|s| {
                !s.dialed
                    && s.record.fingerprint == *fp
                    && s.record.protocol == PROTOCOL_VERSION
                    && now.saturating_duration_since(s.first_seen) >= DIAL_GRACE
                    && !connected(&s.record.peer_id)
            })
            .map(|s| {
                s.dialed = true;
                (s.record.peer_id, addrs_of(&s.record))
            })
            .collect()
    }

    /// A dial owed to a member that tells where it listens but is not connected to this
    /// node: one on another LAN, heard of through the members that relay its announces.
    /// An unreachable one is tried again at a later announce, after [`TOLD_DIAL_MIN`]
    /// doubling up to [`TOLD_DIAL_MAX`].
    pub(crate) fn dial_told(&mut self, now: Instant, from: PeerId, a: &Announce, connected: bool) -> Decision {
        if connected || a.bye {
            self.told_dials.remove(&from);
            return Decision::Nothing;
        }
        if from == self.me || a.protocol != PROTOCOL_VERSION {
            return Decision::Nothing;
        }
        let addrs = a.listen_addrs();
        let last = self.told_dials.get(&from).copied();
        if addrs.is_empty() || last.is_some_and(|(next, _)| now < next) {
            return Decision::Nothing;
        }
        let wait = last.map_or(TOLD_DIAL_MIN, |(_, wait)| (wait * 2).min(TOLD_DIAL_MAX));
        self.told_dials.insert(from, (now + wait, wait));
        Decision::Dial(from, addrs)
    }

    /// A signed announce arrived from `from`.
    pub(crate) fn on_announce(&mut self, now: Instant, from: PeerId, a: Announce, addr: Option<Multiaddr>) -> Decision {
        if from == self.me {
            return Decision::Nothing;
        }
        if a.protocol != PROTOCOL_VERSION {
            tracing::debug!(peer = %from, name = %a.name, protocol = a.protocol, "incompatible announce");
            self.incompatible.insert(from);
            return Decision::Nothing;
        }
        if a.bye {
            if !a.jobs.is_empty() && self.farewells.len() < FAREWELLS_KEPT {
                self.farewells.push(Farewell { peer: from, name: a.name, jobs: a.jobs });
            }
            return self.leave(from, Departure::Bye);
        }
        let joined = !self.members.contains_key(&from);
        let m = self.members.entry(from).or_insert_with(|| Member {
            name: a.name.clone(),
            version: a.version.clone(),
            status: a.status,
            facts: a.facts.clone(),
            health: a.health,
            jobs: Vec::new(),
            addr: None,
            rtt: None,
            last_seen: now,
        });
        m.name = a.name;
        m.version = a.version;
        m.status = a.status;
        m.facts = a.facts;
        m.health = a.health;
        m.jobs = a.jobs;
        m.last_seen = now;
        if addr.is_some() {
            m.addr = addr;
        }
        if joined { Decision::Joined(from) } else { Decision::Nothing }
    }

    /// A connection to `peer` is up, from or to `addr`: a member first heard of through
    /// another (its announce relayed) now has an address of its own.
    pub(crate) fn on_connected(&mut self, peer: PeerId, addr: Multiaddr) {
        if let Some(m) = self.members.get_mut(&peer) {
            m.addr.get_or_insert(addr);
        }
    }

    pub(crate) fn on_rtt(&mut self, peer: PeerId, rtt: Duration) {
        if let Some(m) = self.members.get_mut(&peer) {
            m.rtt = Some(rtt);
        }
    }

    /// The last connection to `peer` closed.
    pub(crate) fn on_disconnected(&mut self, now: Instant, peer: PeerId) -> Decision {
        self.incompatible.remove(&peer);
        for s in self.sightings.values_mut().filter(|s| s.record.peer_id == peer) {
            s.dialed = false; // it may come back: dial again after the grace period
            s.first_seen = now;
        }
        self.leave(peer, Departure::Disconnected)
    }

    /// Members silent for longer than `expiry`.
    pub(crate) fn expire(&mut self, now: Instant, expiry: Duration) -> Vec<PeerId> {
        let dead: Vec<PeerId> = self
            .members
            .iter()
            .filter(|(_, m)| now.saturating_duration_since(m.last_seen) > expiry)
            .map(|(p, _)| *p)
            .collect();
        for p in &dead {
            self.members.remove(p);
            self.told_dials.remove(p);
        }
        dead
    }

    fn leave(&mut self, peer: PeerId, how: Departure) -> Decision {
        self.told_dials.remove(&peer);
        if self.members.remove(&peer).is_some() { Decision::Left(peer, how) } else { Decision::Nothing }
    }

    /// A member's name, if it is one.
    pub(crate) fn name_of(&self, peer: &PeerId) -> Option<&str> {
        self.members.get(peer).map(|m| m.name.as_str())
    }

    /// Rows for `mesh peers`: members, then nodes seen with another key or version.
    pub(crate) fn rows(&self, now: Instant) -> Vec<PeerRow> {
        let mut rows: Vec<PeerRow> = self
            .members
            .iter()
            .map(|(p, m)| PeerRow {
                name: m.name.clone(),
                peer_id: p.to_base58(),
                addrs: m.addr.iter().map(ToString::to_string).collect(),
                workers: Some(m.status.workers),
                busy: Some(m.status.busy),
                queued: Some(m.status.queued),
                tasks_done: Some(m.status.tasks_done),
                steals: Some(m.status.steals),
                rtt_ms: m.rtt.map(|d| d.as_secs_f64() * 1e3),
                version: m.version.clone(),
                last_seen_s: Some(now.saturating_duration_since(m.last_seen).as_secs_f64()),
                is_self: false,
                state: PeerState::Member,
                blobs: None,
                facts: Some(m.facts.clone()),
                health: m.health,
                jobs: m.jobs.clone(),
            })
            .collect();
        for s in self.sightings.values() {
            let r = &s.record;
            let state = match refusal(r, &self.fingerprint) {
                Some(state) => state,
                None if self.incompatible.contains(&r.peer_id) => PeerState::Incompatible,
                None => continue,
            };
            rows.push(sighting_row(r, state));
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(p: PeerId, kf: &str, pv: u32) -> Record {
        Record {
            fullname: format!("n-{p}._mesh._tcp.local."),
            peer_id: p,
            name: "n".into(),
            addrs: vec!["198.18.0.2".parse().unwrap()],
            port: 4877,
            fingerprint: kf.into(),
            protocol: pv,
            version: "0.1.0".into(),
        }
    }

    fn announce(bye: bool) -> Announce {
        Announce {
            facts: crate::core::Facts::default(),
            health: None,
            jobs: Vec::new(),
            addrs: Vec::new(),
            protocol: PROTOCOL_VERSION,
            version: "0.1.0".into(),
            name: "b".into(),
            status: Status::default(),
            bye,
        }
    }

    fn ordered_pair() -> (PeerId, PeerId) {
        let (a, b) = (PeerId::random(), PeerId::random());
        if a < b { (a, b) } else { (b, a) }
    }

    #[test]
    fn a_member_heard_of_through_others_is_dialed_with_a_growing_wait() {
        let (me, far) = ordered_pair();
        let t0 = Instant::now();
        let mut m = Membership::new(me, "open".into());
        let mut a = announce(false);
        let dialed = |d: Decision| matches!(d, Decision::Dial(p, _) if p == far);
        assert!(!dialed(m.dial_told(t0, far, &a, false)), "no address told: nothing to dial");
        a.addrs = vec!["/ip4/198.18.1.12/tcp/4877".into()];
        assert!(dialed(m.dial_told(t0, far, &a, false)));
        let s = Duration::from_secs(1);
        assert!(!dialed(m.dial_told(t0 + s, far, &a, false)), "the next announce waits");
        assert!(dialed(m.dial_told(t0 + TOLD_DIAL_MIN, far, &a, false)));
        assert!(!dialed(m.dial_told(t0 + 2 * TOLD_DIAL_MIN, far, &a, false)), "the wait doubled");
        assert!(dialed(m.dial_told(t0 + 3 * TOLD_DIAL_MIN, far, &a, false)));
        let mut t = t0 + 3 * TOLD_DIAL_MIN;
        for _ in 0..20 {
            t += TOLD_DIAL_MAX;
            assert!(dialed(m.dial_told(t, far, &a, false)), "the wait stops growing at its bound");
        }
        assert!(!dialed(m.dial_told(t, far, &a, true)), "connected, then not: dialed at once");
        assert!(dialed(m.dial_told(t + s, far, &a, false)));
    }

    #[test]
    fn only_the_lower_id_dials_at_once_and_the_other_after_grace() {
        let (lo, hi) = ordered_pair();
        let t0 = Instant::now();
        let mut m_lo = Membership::new(lo, "open".into());
        let mut m_hi = Membership::new(hi, "open".into());
        assert!(
            matches!(m_lo.on_record(t0, rec(hi, "open", PROTOCOL_VERSION), false), Decision::Dial(p, _) if p == hi)
        );
        assert_eq!(m_hi.on_record(t0, rec(lo, "open", PROTOCOL_VERSION), false), Decision::Nothing);
        assert!(m_hi.overdue_dials(t0 + Duration::from_secs(1), |_| false).is_empty());
        assert!(m_hi.overdue_dials(t0 + DIAL_GRACE, |_| true).is_empty(), "connected: no dial");
        assert_eq!(m_hi.overdue_dials(t0 + DIAL_GRACE, |_| false).len(), 1);
    }

    #[test]
    fn other_key_or_version_is_never_dialed_and_is_reported() {
        let (lo, hi) = ordered_pair();
        let t0 = Instant::now();
        let mut m = Membership::new(lo, "aaaa0000".into());
        let refused =
            |state, protocol| Decision::Refused { name: "n".into(), state, version: "0.1.0".into(), protocol };
        let differs = refused(PeerState::DifferentKey, PROTOCOL_VERSION);
        assert_eq!(m.on_record(t0, rec(hi, "bbbb1111", PROTOCOL_VERSION), false), differs, "said once");
        assert_eq!(m.on_record(t0, rec(hi, "bbbb1111", PROTOCOL_VERSION), false), Decision::Nothing);
        let mut r2 = rec(PeerId::random().max(hi), "aaaa0000", 99);
        r2.fullname = "other".into();
        assert_eq!(m.on_record(t0, r2, false), refused(PeerState::Incompatible, 99));
        // An older node's fingerprint differs too (the key's derivation changed with the
        // version): it is told to upgrade, not that its key is wrong.
        let mut r3 = rec(PeerId::random().max(hi), "cccc3333", PROTOCOL_VERSION - 1);
        r3.fullname = "older".into();
        assert_eq!(m.on_record(t0, r3, false), refused(PeerState::Incompatible, PROTOCOL_VERSION - 1));
        assert!(m.overdue_dials(t0 + DIAL_GRACE * 2, |_| false).is_empty());
        let mut states: Vec<PeerState> = m.rows(t0).into_iter().map(|r| r.state).collect();
        states.sort_by_key(|s| format!("{s:?}"));
        assert_eq!(states, [PeerState::DifferentKey, PeerState::Incompatible, PeerState::Incompatible]);
        // A flood of made-up nodes: a few are reported, all are listed.
        let said = (0..100)
            .filter(|i| {
                let mut r = rec(PeerId::random(), "cccc2222", PROTOCOL_VERSION);
                r.fullname = format!("made-up-{i}");
                matches!(m.on_record(t0, r, false), Decision::Refused { .. })
            })
            .count();
        assert_eq!(said, REFUSALS_SAID as usize - 3, "three of the burst went above");
        assert_eq!(m.rows(t0).len(), 103);
    }

    #[test]
    fn members_join_leave_and_expire() {
        let (me, b) = ordered_pair();
        let t0 = Instant::now();
        let mut m = Membership::new(me, "open".into());
        assert_eq!(m.on_announce(t0, b, announce(false), None), Decision::Joined(b));
        assert_eq!(m.on_announce(t0, b, announce(false), None), Decision::Nothing);
        assert_eq!(m.on_announce(t0, b, announce(true), None), Decision::Left(b, Departure::Bye));
        m.on_announce(t0, b, announce(false), None);
        assert!(m.expire(t0 + Duration::from_secs(4), Duration::from_secs(5)).is_empty());
        assert_eq!(m.expire(t0 + Duration::from_secs(6), Duration::from_secs(5)), vec![b]);
        m.on_announce(t0, b, announce(false), None);
        assert_eq!(m.on_disconnected(t0, b), Decision::Left(b, Departure::Disconnected));
        let mut old = announce(false);
        old.protocol = 0;
        assert_eq!(m.on_announce(t0, b, old, None), Decision::Nothing);
        assert!(!m.is_member(&b));
    }
}
