//! `mesh peers`: a table of the members (and flagged incompatible nodes) on stdout, and a
//! count of the nodes that use another key on stderr; or every row as a JSON array.

use super::fit::{col, fitted, terminal_width};
use super::short_peer;
use crate::node::{Health, PeerRow, PeerState};
use std::io::{self, Write};

/// Where `mesh peers` got its rows.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PeersSource {
    /// The node that runs under this home.
    Node,
    /// No node runs here: mDNS was browsed for this long.
    Browsed(std::time::Duration),
}

/// Why a mesh may look empty, for the words `mesh peers` prints when it finds nobody;
/// `here` when no node runs on this machine either.
fn likely_causes(here: bool) -> String {
    let nobody = if here { "here or on the other machines" } else { "on the other machines" };
    format!(
        "Likely causes:\n  \
         - no `mesh join` runs {nobody};\n  \
         - the network blocks multicast (mDNS): give the nodes each other's address with\n    \
         `mesh join --peer IP:4877`;\n  \
         - the nodes use different keys: all must have the same --key or MESH_KEY."
    )
}

/// Prints `mesh peers`: a table of members (and flagged incompatible nodes) on stdout, with
/// a count of nodes that use another key; or every row as a JSON array. When nobody else
/// was found it says so in words, with the likely causes, on stderr.
pub(crate) fn peers(rows: &[PeerRow], json: bool, source: PeersSource) -> io::Result<()> {
    let mut out = io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, rows)?;
        writeln!(out)?;
        return out.flush();
    }
    if let PeersSource::Browsed(d) = source
        && rows.is_empty()
    {
        let causes = likely_causes(true);
        return writeln!(io::stderr(), "No mesh node found on this LAN in {:.1} s. {causes}", d.as_secs_f64());
    }
    let dash = || "-".to_string();
    let columns = [
        col("", 0),
        col("name", 0),
        col("peer id", 6),
        col("address", 1),
        col("workers", 0),
        col("busy", 0),
        col("queued", 2),
        col("tasks done", 2),
        col("RTT", 4),
        col("arch", 3),
        col("runs", 1),
        col("python", 5),
        col("labels", 7),
        col("temp", 5),
        col("load", 4),
        col("mem free", 6),
        col("version", 8),
        col("last seen", 7),
    ];
    let mut lines = Vec::new();
    for r in rows.iter().filter(|r| r.state != PeerState::DifferentKey) {
        let mark = match (r.is_self, r.state) {
            (true, _) => "*",
            (_, PeerState::Incompatible) => "!",
            _ => "",
        };
        lines.push(vec![
            mark.to_string(),
            r.name.clone(),
            short_peer(&r.peer_id),
            lan_address(&r.addrs).unwrap_or_else(dash),
            r.workers.map_or_else(dash, |v| v.to_string()),
            r.busy.map_or_else(dash, |v| v.to_string()),
            r.queued.map_or_else(dash, |v| v.to_string()),
            r.tasks_done.map_or_else(dash, |v| v.to_string()),
            r.rtt_ms.map_or_else(dash, |v| format!("{v:.1} ms")),
            r.facts.as_ref().map_or_else(dash, |f| f.arch.clone()),
            r.facts.as_ref().map_or_else(dash, |f| if f.allow_run { "yes".into() } else { "no".into() }),
            r.facts.as_ref().and_then(|f| f.python).map_or_else(dash, |v| v.to_string()),
            r.facts.as_ref().map(|f| f.labels.join(",")).filter(|l| !l.is_empty()).unwrap_or_else(dash),
            r.health.as_ref().and_then(temperature).unwrap_or_else(dash),
            r.health.and_then(|h| h.load_centi).map_or_else(dash, |l| format!("{:.2}", f64::from(l) / 100.0)),
            r.health.and_then(|h| h.mem_avail_mb).map_or_else(dash, |m| format!("{m} MiB")),
            r.version.clone(),
            r.last_seen_s.map_or_else(dash, |v| format!("{v:.1} s ago")),
        ]);
    }
    let t = fitted(&columns, &lines, terminal_width());
    writeln!(out, "{t}")?;
    let other_key = rows.iter().filter(|r| r.state == PeerState::DifferentKey).count();
    let incompatible = rows.iter().filter(|r| r.state == PeerState::Incompatible).count();
    let mut err = io::stderr().lock();
    if rows.iter().any(|r| r.is_self) {
        writeln!(err, "* this node; runs: whether it runs programs for others (mesh join --allow-run)")?;
    }
    for r in rows.iter().filter(|r| r.health.is_some_and(|h| h.throttled_now() || h.under_voltage_now())) {
        writeln!(
            err,
            "{} is slowed by its firmware (too hot, or an under-powered supply): its tasks take longer",
            r.name
        )?;
    }
    if incompatible > 0 {
        writeln!(err, "! {incompatible} node(s) run another protocol version and are not used; upgrade them")?;
    }
    if other_key > 0 {
        writeln!(
            err,
            "{other_key} node(s) on this LAN use a different key and cannot join this mesh; check --key or MESH_KEY"
        )?;
    }
    let alone = !rows.iter().any(|r| !r.is_self && r.state == PeerState::Member);
    if matches!(source, PeersSource::Node) && alone {
        writeln!(err, "No other node found: this node is alone in its mesh. {}", likely_causes(false))?;
    }
    out.flush()
}

/// Where a node is on the LAN, as `IP:PORT`: its first address that is not loopback (the
/// one its peers reach it at), else its first.
fn lan_address(addrs: &[String]) -> Option<String> {
    let parsed: Vec<(std::net::IpAddr, u16)> = addrs.iter().filter_map(|a| ip_port(a)).collect();
    let (ip, port) = parsed.iter().find(|(ip, _)| !ip.is_loopback()).or(parsed.first())?;
    Some(std::net::SocketAddr::new(*ip, *port).to_string())
}

/// `/ip4/A/tcp/P[/p2p/…]` as its address and port.
fn ip_port(multiaddr: &str) -> Option<(std::net::IpAddr, u16)> {
    let mut parts = multiaddr.split('/').skip(1);
    let (proto, ip, tcp, port) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (matches!(proto, "ip4" | "ip6") && tcp == "tcp").then_some(())?;
    Some((ip.parse().ok()?, port.parse().ok()?))
}

/// A machine's temperature, with what its firmware says when it slows the CPU:
/// "71.2 °C", "82.0 °C throttled", "54.1 °C low voltage".
fn temperature(h: &Health) -> Option<String> {
    let c = f64::from(h.temp_mc?) / 1000.0;
    let flag = if h.under_voltage_now() {
        " low voltage"
    } else if h.throttled_now() {
        " throttled"
    } else {
        ""
    };
    Some(format!("{c:.1} °C{flag}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temperature_says_when_the_firmware_slows_the_cpu() {
        let h = |temp_mc, throttled| Health { temp_mc, throttled, ..Health::default() };
        assert_eq!(temperature(&h(Some(71_234), None)).as_deref(), Some("71.2 °C"));
        assert_eq!(temperature(&h(Some(82_000), Some(0x4))).as_deref(), Some("82.0 °C throttled"));
        assert_eq!(temperature(&h(Some(54_100), Some(0x50005))).as_deref(), Some("54.1 °C low voltage"));
        assert_eq!(temperature(&h(Some(60_000), Some(0x50000))).as_deref(), Some("60.0 °C"), "only past events");
        assert_eq!(temperature(&h(None, Some(0x4))), None);
    }

    #[test]
    fn a_node_shows_its_lan_address_not_loopback() {
        let addrs = ["/ip4/127.0.0.1/tcp/4877".to_string(), "/ip4/198.18.0.11/tcp/4877".to_string()];
        assert_eq!(lan_address(&addrs).as_deref(), Some("198.18.0.11:4877"));
        assert_eq!(lan_address(&addrs[..1]).as_deref(), Some("127.0.0.1:4877"), "loopback when it is all");
        let peer = ["/ip4/198.18.0.12/tcp/4877/p2p/12D3KooWDJpq".to_string()];
        assert_eq!(lan_address(&peer).as_deref(), Some("198.18.0.12:4877"));
        assert_eq!(lan_address(&["/dns4/pi/tcp/1".to_string()]), None);
        assert_eq!(lan_address(&["/ip6/::1/tcp/4877".to_string()]).as_deref(), Some("[::1]:4877"));
    }
}
