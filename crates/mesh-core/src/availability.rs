//! When a node lends its workers to the mesh: `mesh join --hours 18:00-08:00` serves only
//! in those hours of local time, and `--when-idle` only while the machine's own load (the
//! load that is not the node's) is low, as HTCondor's default policy does for desktops.
//!
//! Outside them the node takes no new tasks: it finishes the runs it has started, others
//! steal what it holds, and it stays a member of the mesh. The node layer reads the clock
//! and the load; this module decides. Thresholds, as HTCondor's defaults: a node stops
//! lending when the machine's other load is above [`BUSY_ABOVE`] and starts again once it
//! is at most [`IDLE_AT_MOST`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The other load above which a `--when-idle` node stops taking tasks.
pub const BUSY_ABOVE: f64 = 0.5;
/// The other load at or below which it takes tasks again.
pub const IDLE_AT_MOST: f64 = 0.3;
/// The time constant of the kernel's 1-minute load average, which the node's own load
/// is averaged with, so that the two can be subtracted.
const LOAD_WINDOW: Duration = Duration::from_secs(60);

/// A daily window of local time, `HH:MM-HH:MM`; it may wrap past midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hours {
    /// Minutes after midnight: the first minute in the window, and the first one after it.
    start: u16,
    end: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    #[error("expected HH:MM-HH:MM, for example 18:00-08:00")]
    Shape,
    #[error("{0} is not a time of day (00:00 to 23:59)")]
    Time(String),
    #[error("the window starts and ends at the same time; leave --hours out to serve always")]
    Empty,
}

impl Hours {
    /// Whether `minute` (after midnight) is in the window.
    pub fn contains(&self, minute: u16) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

fn minute_of(s: &str) -> Result<u16, HoursError> {
    let bad = || HoursError::Time(s.to_string());
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let two_digits = |x: &str| x.len() == 2 && x.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(m) || h.is_empty() || h.len() > 2 || !h.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl FromStr for Hours {
    type Err = HoursError;

    fn from_str(s: &str) -> Result<Self, HoursError> {
        let (a, b) = s.trim().split_once('-').ok_or(HoursError::Shape)?;
        let (start, end) = (minute_of(a.trim())?, minute_of(b.trim())?);
        if start == end {
            return Err(HoursError::Empty);
        }
        Ok(Self { start, end })
    }
}

impl fmt::Display for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}-{:02}:{:02}", self.start / 60, self.start % 60, self.end / 60, self.end % 60)
    }
}

/// What the node's machine is doing now, as the node layer reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Machine {
    /// Local time, in minutes after midnight.
    pub minute_of_day: u16,
    /// The kernel's 1-minute load average, where it can be read.
    pub load1: Option<f64>,
    /// This node's workers running a task now.
    pub busy_workers: u32,
}

/// Whether the node lends its workers, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Lending {
    Yes,
    OutsideHours(Hours),
    /// The machine's own work: its load beyond the node's.
    MachineBusy {
        other_load: f64,
    },
}

impl fmt::Display for Lending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Yes => write!(f, "takes tasks"),
            Self::OutsideHours(h) => write!(f, "takes no new tasks outside its hours ({h})"),
            Self::MachineBusy { other_load } => {
                write!(f, "takes no new tasks while the machine is busy with its own work (load {other_load:.2})")
            }
        }
    }
}

/// A node's lending policy and the little it remembers: its own load, averaged like the
/// kernel's, and whether it lent last time (the idle check has two thresholds).
#[derive(Debug, Clone)]
pub struct Availability {
    hours: Option<Hours>,
    when_idle: bool,
    own_load: f64,
    lending: Lending,
}

impl Default for Availability {
    /// Lends always.
    fn default() -> Self {
        Self::new(None, false)
    }
}

impl Availability {
    pub fn new(hours: Option<Hours>, when_idle: bool) -> Self {
        Self { hours, when_idle, own_load: 0.0, lending: Lending::Yes }
    }

    /// Whether the policy can ever say no: a node without one need not be asked.
    pub fn is_always(&self) -> bool {
        self.hours.is_none() && !self.when_idle
    }

    /// Decides from what the machine does now, `elapsed` after the last call.
    pub fn update(&mut self, m: Machine, elapsed: Duration) -> Lending {
        let k = (-elapsed.as_secs_f64() / LOAD_WINDOW.as_secs_f64()).exp();
        self.own_load = self.own_load * k + f64::from(m.busy_workers) * (1.0 - k);
        let lent = self.lending == Lending::Yes;
        self.lending = match (self.hours, m.load1) {
            (Some(h), _) if !h.contains(m.minute_of_day) => Lending::OutsideHours(h),
            (_, Some(load)) if self.when_idle => {
                let other_load = (load - self.own_load).max(0.0);
                let limit = if lent { BUSY_ABOVE } else { IDLE_AT_MOST };
                if other_load > limit { Lending::MachineBusy { other_load } } else { Lending::Yes }
            }
            _ => Lending::Yes,
        };
        self.lending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u16, m: u16) -> u16 {
        h * 60 + m
    }

    #[test]
    fn hours_parse_show_and_wrap_past_midnight() {
        let night: Hours = "18:00-08:00".parse().unwrap();
        assert_eq!(night.to_string(), "18:00-08:00");
        assert!(night.contains(at(18, 0)) && night.contains(at(23, 59)) && night.contains(at(0, 0)));
        assert!(night.contains(at(7, 59)) && !night.contains(at(8, 0)) && !night.contains(at(12, 0)));
        let day: Hours = " 9:30 - 17:00 ".parse().unwrap();
        assert_eq!(day.to_string(), "09:30-17:00");
        assert!(day.contains(at(9, 30)) && day.contains(at(16, 59)) && !day.contains(at(17, 0)));
        assert!(!day.contains(at(9, 29)));
        assert_eq!("18:00".parse::<Hours>(), Err(HoursError::Shape));
        assert_eq!("24:00-08:00".parse::<Hours>(), Err(HoursError::Time("24:00".into())));
        assert_eq!("18:60-08:00".parse::<Hours>(), Err(HoursError::Time("18:60".into())));
        assert_eq!("18:0-08:00".parse::<Hours>(), Err(HoursError::Time("18:0".into())));
        assert_eq!("ab:cd-08:00".parse::<Hours>(), Err(HoursError::Time("ab:cd".into())));
        assert_eq!("08:00-08:00".parse::<Hours>(), Err(HoursError::Empty));
    }

    #[test]
    fn outside_its_hours_a_node_lends_nothing() {
        let mut a = Availability::new(Some("18:00-08:00".parse().unwrap()), false);
        let s = Duration::from_secs(5);
        let m = |minute| Machine { minute_of_day: minute, load1: Some(3.0), busy_workers: 0 };
        assert_eq!(a.update(m(at(12, 0)), s), Lending::OutsideHours("18:00-08:00".parse().unwrap()));
        assert_eq!(a.update(m(at(18, 0)), s), Lending::Yes, "load does not matter without --when-idle");
        assert!(!a.is_always() && Availability::new(None, false).is_always());
    }

    #[test]
    fn when_idle_subtracts_its_own_load_and_has_two_thresholds() {
        let mut a = Availability::new(None, true);
        let tick = Duration::from_secs(5);
        // The node's 4 workers run for minutes: the load is theirs, the machine is idle.
        let mut load = 0.0;
        for _ in 0..60 {
            load = load * (-5.0f64 / 60.0).exp() + 4.0 * (1.0 - (-5.0f64 / 60.0).exp());
            let m = Machine { minute_of_day: 0, load1: Some(load), busy_workers: 4 };
            assert_eq!(a.update(m, tick), Lending::Yes, "its own load is not the machine's");
        }
        // Its job ends: its load decays with the kernel's, and it still lends.
        for _ in 0..12 {
            load *= (-5.0f64 / 60.0).exp();
            let m = Machine { minute_of_day: 0, load1: Some(load), busy_workers: 0 };
            assert_eq!(a.update(m, tick), Lending::Yes, "the decaying load of its own past tasks");
        }
        // The owner starts work: 0.6 more load than the node's.
        let busy = a.update(Machine { minute_of_day: 0, load1: Some(a.own_load + 0.6), busy_workers: 0 }, tick);
        assert!(matches!(busy, Lending::MachineBusy { other_load } if other_load > BUSY_ABOVE));
        // 0.4 is below the stop threshold but above the start one: still not lending.
        let own = a.own_load;
        assert!(matches!(
            a.update(Machine { minute_of_day: 0, load1: Some(own + 0.4), busy_workers: 0 }, tick),
            Lending::MachineBusy { .. }
        ));
        let own = a.own_load;
        assert_eq!(a.update(Machine { minute_of_day: 0, load1: Some(own + 0.2), busy_workers: 0 }, tick), Lending::Yes);
        // Lending again, 0.4 is fine.
        let own = a.own_load;
        assert_eq!(a.update(Machine { minute_of_day: 0, load1: Some(own + 0.4), busy_workers: 0 }, tick), Lending::Yes);
        // No load average to read: it lends.
        assert_eq!(a.update(Machine { minute_of_day: 0, load1: None, busy_workers: 0 }, tick), Lending::Yes);
    }
}
