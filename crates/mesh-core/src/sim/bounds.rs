//! What one node can cost another through the scheduler: a thief that asks in a tight
//! loop is answered at its rate only (`Config::steal_rate`). The simulator's proptests
//! check the other side: an honest thief is never refused (`check_outcomes`).

use super::*;

#[test]
fn a_thief_asking_in_a_tight_loop_gets_answers_at_its_rate_only() {
    // A victim with queued work, and a member that sends steal requests without waiting.
    let t0 = Instant::now();
    let cfg = Config { workers: 1, ..Config::default() };
    let (rate, burst) = (cfg.steal_rate, cfg.steal_burst);
    let mut victim: Scheduler<u64, u64> = Scheduler::new(NodeId(0), cfg, 1, t0);
    victim.submit(t0, 0, 100_000, 0);
    let rogue = NodeId(9);
    let mut answers = 0u64;
    // 10,000 requests a second for 10 seconds.
    for i in 0..100_000u64 {
        victim.handle_message(t0 + Duration::from_micros(100 * i), rogue, Message::Steal { req: i });
        while let Some(a) = victim.poll_action() {
            if matches!(a, Action::Send { to, msg: Message::Grant { .. } } if to == rogue) {
                answers += 1;
            }
        }
    }
    let most = burst as u64 + (10.0 * rate) as u64;
    assert!(answers <= most && answers >= most - 2, "{answers} answers; the bound is {most}");
    let c = victim.counters();
    assert_eq!(c.steal_requests_received, 100_000);
    assert_eq!(c.steal_requests_refused, 100_000 - answers);
    // Another thief is not held back by the first one's flood.
    victim.handle_message(t0 + Duration::from_millis(10_000), NodeId(5), Message::Steal { req: 0 });
    let other = std::iter::from_fn(|| victim.poll_action())
        .any(|a| matches!(a, Action::Send { to: NodeId(5), msg: Message::Grant { .. } }));
    assert!(other, "an honest thief got no answer");
}
