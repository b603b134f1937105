//! The 1-second metrics window a group's policies read.

use std::collections::{BTreeMap, VecDeque};

/// One second of a group's metrics. `None` means the source had no data for that second
/// (no ready instance, no load balancer attached), which policies treat as "no opinion".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Unix second this sample covers.
    pub t: u64,
    /// Instances in service (registered with the group's target groups).
    pub in_service: u32,
    /// Instances in service and past their warm-up: the ones whose CPU is averaged.
    pub ready: u32,
    /// Average CPU utilization (percent of each instance's allowance) over ready instances.
    pub cpu: Option<f64>,
    /// Requests the group's target groups completed in this second.
    pub requests: Option<f64>,
    /// Other metrics by key (`TargetResponseTime:p95` in seconds, `HTTPCode_Target_5XX_Count`).
    pub custom: BTreeMap<String, f64>,
}

/// The most recent samples, oldest first, at most one per second.
#[derive(Debug, Clone)]
pub struct Window {
    samples: VecDeque<Sample>,
    capacity: usize,
}

impl Window {
    /// A window that keeps the last `seconds` samples.
    pub fn new(seconds: usize) -> Self {
        Window {
            samples: VecDeque::with_capacity(seconds.max(1)),
            capacity: seconds.max(1),
        }
    }

    /// Adds a sample. A sample for a second already present replaces it; one older than the
    /// newest is ignored (time never moves backwards in the window).
    pub fn push(&mut self, s: Sample) {
        match self.samples.back() {
            Some(last) if last.t == s.t => {
                self.samples.pop_back();
            }
            Some(last) if last.t > s.t => return,
            _ => {}
        }
        self.samples.push_back(s);
        while self.samples.len() > self.capacity {
            self.samples.pop_front();
        }
    }

    /// The newest sample.
    pub fn latest(&self) -> Option<&Sample> {
        self.samples.back()
    }

    /// The samples of the last `seconds` seconds ending at `now` (inclusive), oldest first,
    /// or `None` unless there is one for every one of those seconds: a gap in the data
    /// never triggers a decision.
    pub fn last(&self, now: u64, seconds: u64) -> Option<Vec<&Sample>> {
        if seconds == 0 || now + 1 < seconds {
            return None;
        }
        let from = now + 1 - seconds;
        let out: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.t >= from && s.t <= now)
            .collect();
        (out.len() as u64 == seconds).then_some(out)
    }

    /// Every sample, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: u64) -> Sample {
        Sample {
            t,
            ..Default::default()
        }
    }

    #[test]
    fn gaps_and_old_samples_give_no_window() {
        let mut w = Window::new(10);
        for t in [1, 2, 3, 5] {
            w.push(s(t));
        }
        w.push(s(4)); // older than the newest: ignored
        assert!(w.last(5, 2).is_none(), "second 4 is missing");
        assert_eq!(w.last(3, 3).unwrap().len(), 3);
        assert!(w.last(5, 1).is_some());
        assert!(w.last(5, 0).is_none());
    }

    #[test]
    fn capacity_bounds_the_window() {
        let mut w = Window::new(3);
        for t in 0..10 {
            w.push(s(t));
        }
        assert_eq!(w.iter().map(|s| s.t).collect::<Vec<_>>(), vec![7, 8, 9]);
        w.push(s(9));
        assert_eq!(w.iter().count(), 3);
    }
}
