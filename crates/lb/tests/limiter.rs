//! The adaptive concurrency limit as pure logic, on latency traces of modelled targets.
//!
//! A modelled target is an app server with a hidden pool of `workers`, each request taking
//! `service` (times a seeded jitter), and first-come-first-served queueing beyond the pool,
//! like `lb_backend`. Every case has some jitter: without it, a saturated pool answers in
//! lockstep batches, which no real service does. The load keeps the limit full (a saturated target) unless a case says
//! otherwise. Every latency the limit learns from is one such request's, so the trace
//! answers the limit's own choices: nothing here sleeps, and each case is deterministic.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use spindle_lb::scheduler::AdaptiveLimit;

/// The modelled target's behaviour from some time on.
#[derive(Clone, Copy, Debug)]
struct Phase {
    /// When this phase starts, in ms from the start of the trace.
    from_ms: u64,
    workers: usize,
    service: Duration,
    /// Offered requests per second; `None` keeps the limit full.
    rate: Option<f64>,
}

/// What a trace showed: the limit every 100 ms.
struct Trace {
    limits: Vec<(u64, u32)>,
}

impl Trace {
    /// The lowest and highest limit in `[from_ms, to_ms)`.
    fn range(&self, from_ms: u64, to_ms: u64) -> (u32, u32) {
        let v: Vec<u32> = self
            .limits
            .iter()
            .filter(|(t, _)| (from_ms..to_ms).contains(t))
            .map(|(_, l)| *l)
            .collect();
        (
            *v.iter().min().expect("samples"),
            *v.iter().max().expect("samples"),
        )
    }

    /// The first time from which the limit stays within `lo..=hi` to the end.
    fn settled_at(&self, lo: u32, hi: u32) -> Option<u64> {
        let mut at = None;
        for &(t, l) in &self.limits {
            if (lo..=hi).contains(&l) {
                at.get_or_insert(t);
            } else {
                at = None;
            }
        }
        at
    }
}

/// Deterministic values spread evenly over [0, 1) (the golden-ratio sequence), for jitter and
/// arrival gaps: a trace needs variety, not randomness.
struct Rng(f64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 = (self.0 + 0.618_033_988_749_895).fract();
        self.0
    }
}

/// Runs `limit` against the modelled target for `total_ms`. `jitter` stretches each service
/// time by up to that fraction.
fn run(mut limit: AdaptiveLimit, phases: &[Phase], jitter: f64, total_ms: u64) -> Trace {
    let t0 = Instant::now();
    let at = |us: u64| t0 + Duration::from_micros(us);
    let phase_at = |us: u64| {
        *phases
            .iter()
            .rev()
            .find(|p| p.from_ms * 1000 <= us)
            .expect("a phase from 0")
    };
    let mut rng = Rng(0.5);
    // Each worker's next free time, and completions as (end, start, in_flight at start).
    let mut free: Vec<u64> = Vec::new();
    let mut done: BinaryHeap<Reverse<(u64, u64, u32)>> = BinaryHeap::new();
    let mut in_flight = 0u32;
    let mut waiting = 0u32; // offered but held back by the limit (open-loop phases)
    let mut next_arrival = 0u64;
    let mut limits = Vec::new();
    let mut next_record = 0u64;
    let mut now = 0u64;
    let end = total_ms * 1000;
    let issue = |now: u64,
                 in_flight: &mut u32,
                 free: &mut Vec<u64>,
                 done: &mut BinaryHeap<Reverse<(u64, u64, u32)>>,
                 rng: &mut Rng| {
        let p = phase_at(now);
        free.resize(p.workers.max(free.len()), now);
        // Workers beyond the phase's pool are gone: only the first `workers` take requests.
        let (w, &t) = free[..p.workers]
            .iter()
            .enumerate()
            .min_by_key(|(_, t)| **t)
            .expect("workers");
        let service = p.service.as_micros() as f64 * (1.0 + jitter * rng.unit());
        let finish = t.max(now) + service as u64;
        free[w] = finish;
        *in_flight += 1;
        done.push(Reverse((finish, now, *in_flight)));
    };
    while now < end {
        let p = phase_at(now);
        // Fill the limit: all of it when saturated, else whatever has arrived.
        match p.rate {
            None => {
                while in_flight < limit.limit() {
                    issue(now, &mut in_flight, &mut free, &mut done, &mut rng);
                }
            }
            Some(rate) => {
                while next_arrival <= now {
                    waiting += 1;
                    next_arrival += (-(1.0 - rng.unit()).ln() / rate * 1e6) as u64 + 1;
                }
                while waiting > 0 && in_flight < limit.limit() {
                    waiting -= 1;
                    issue(now, &mut in_flight, &mut free, &mut done, &mut rng);
                }
            }
        }
        while next_record <= now {
            limits.push((next_record / 1000, limit.limit()));
            next_record += 100_000;
        }
        // Advance to the next completion, arrival or record.
        let mut next = next_record;
        if let Some(Reverse((f, _, _))) = done.peek() {
            next = next.min(*f);
        }
        if p.rate.is_some() {
            next = next.min(next_arrival);
        }
        now = next.max(now + 1);
        while let Some(&Reverse((f, s, n))) = done.peek() {
            if f > now {
                break;
            }
            done.pop();
            in_flight -= 1;
            limit.sample(Duration::from_micros(f - s), n, at(f));
        }
    }
    Trace { limits }
}

fn saturated(workers: usize, service_ms: u64) -> Phase {
    Phase {
        from_ms: 0,
        workers,
        service: Duration::from_millis(service_ms),
        rate: None,
    }
}

fn default_limit(initial: u32) -> AdaptiveLimit {
    // The defaults a target group gets from `spindle.tenant.header` alone.
    AdaptiveLimit::new(initial, 2, 1000, 1.1)
}

/// One case: a target, where the limit starts, and where it must be from when on.
struct Case {
    name: &'static str,
    workers: usize,
    service_ms: u64,
    jitter: f64,
    initial: u32,
    /// The limit stays within this range from `by_ms` to the end of 10 s.
    range: (u32, u32),
    by_ms: u64,
}

#[test]
fn the_limit_converges_on_each_targets_knee_and_stays_there() {
    let cases = [
        Case {
            name: "pool of 4, 16 ms, from the default 20",
            workers: 4,
            service_ms: 16,
            jitter: 0.1,
            initial: 20,
            // One over the knee while a probe is judged.
            range: (4, 5),
            by_ms: 2000,
        },
        Case {
            name: "pool of 4, 16 ms with 30% jitter",
            workers: 4,
            service_ms: 16,
            jitter: 0.3,
            initial: 20,
            range: (4, 5),
            by_ms: 2000,
        },
        Case {
            name: "pool of 32, 2 ms, from the default 20 (upward)",
            workers: 32,
            service_ms: 2,
            jitter: 0.1,
            initial: 20,
            // The 1 ms of tolerated queueing is 16 requests at 2 ms over 32 workers.
            range: (32, 56),
            by_ms: 1000,
        },
        Case {
            name: "pool of 32, 2 ms, from the minimum",
            workers: 32,
            service_ms: 2,
            jitter: 0.2,
            initial: 2,
            range: (32, 56),
            by_ms: 2000,
        },
        Case {
            name: "slow but healthy: pool of 4, 250 ms",
            workers: 4,
            service_ms: 250,
            jitter: 0.1,
            initial: 20,
            // It answers 16 requests a second: a window of 8 takes half a second, and each
            // cut is judged once what queued before it has drained (over a second at first).
            range: (4, 7),
            by_ms: 8000,
        },
        Case {
            name: "one worker, 16 ms",
            workers: 1,
            service_ms: 16,
            jitter: 0.1,
            initial: 20,
            // The floor, and a probe one over it now and then. Each cut waits for its
            // verdict until what queued before it has drained (320 ms at first).
            range: (2, 3),
            by_ms: 3500,
        },
    ];
    let mut failures = Vec::new();
    for c in &cases {
        let limit = default_limit(c.initial);
        let phase = saturated(c.workers, c.service_ms);
        let trace = run(limit, &[phase], c.jitter, 10_000);
        let (lo, hi) = trace.range(c.by_ms, 10_000);
        let settled = trace.settled_at(c.range.0, c.range.1);
        if lo < c.range.0 || hi > c.range.1 {
            let every: Vec<u32> = trace.limits.iter().map(|(_, l)| *l).collect();
            failures.push(format!(
                "{}: limit between {lo} and {hi} after {} ms, want {:?} (settled at {settled:?} ms); every 100 ms: {every:?}",
                c.name, c.by_ms, c.range
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_limit_does_not_flap_at_its_knee() {
    // Once settled, a steady target sees a steady limit: it moves within the band where it
    // neither probes up nor cuts (a step or two around the knee), never swinging wider, for
    // small and large pools alike.
    for (workers, service_ms, band) in [(4, 16, 3), (8, 16, 3), (32, 2, 16)] {
        let trace = run(
            default_limit(20),
            &[saturated(workers, service_ms)],
            0.2,
            20_000,
        );
        let (lo, hi) = trace.range(2000, 20_000);
        assert!(
            hi - lo <= band && lo as usize >= workers - 1,
            "pool of {workers}: between {lo} and {hi} over 18 s"
        );
    }
}

#[test]
fn at_a_steady_knee_the_limit_rarely_probes_past_it() {
    // Every window spent one over the knee of a small pool queues a request inside the
    // target, out of fairness's reach: probes that the target refuses get rarer, so the limit
    // sits at the knee nearly all the time: a probe a second, judged over two or three of
    // the twenty windows, and sampled here every 100 ms.
    // Small pools, where one request over the knee adds more than the tolerated 10% to
    // every answer. In larger ones that request costs less than the tolerance, and the limit
    // may settle one over the knee (8 workers at 16 ms: 9), which costs each answer that much.
    for (workers, service_ms, jitter) in [(4, 16, 0.1), (4, 16, 0.3), (2, 16, 0.1), (3, 16, 0.1)] {
        let trace = run(
            default_limit(20),
            &[saturated(workers, service_ms)],
            jitter,
            20_000,
        );
        let after: Vec<u32> = trace
            .limits
            .iter()
            .filter(|(t, _)| *t >= 3000)
            .map(|(_, l)| *l)
            .collect();
        let at_knee = after.iter().filter(|&&l| l as usize == workers).count();
        let over = after.iter().filter(|&&l| l as usize > workers).count();
        let below = after.len() - at_knee - over;
        assert!(
            at_knee * 100 >= after.len() * 85 && over * 100 <= after.len() * 15,
            "pool of {workers} ({service_ms} ms, jitter {jitter}): at the knee {at_knee}, over {over}, below {below} of {} samples: {after:?}",
            after.len()
        );
    }
}

#[test]
fn the_limit_reprobes_upward_when_the_target_grows() {
    // The pool doubles after 3 s (the app was given more workers): the limit follows.
    let phases = [
        saturated(4, 16),
        Phase {
            from_ms: 3000,
            ..saturated(8, 16)
        },
    ];
    let trace = run(default_limit(20), &phases, 0.1, 6000);
    let (lo, hi) = trace.range(1000, 3000);
    assert!((4..=6).contains(&lo) && hi <= 6, "before: {lo}..{hi}");
    let (lo, hi) = trace.range(4500, 6000);
    // Within a worker of the new pool, and no more than three over it.
    assert!(lo >= 7 && hi <= 11, "after the pool grew: {lo}..{hi}");
}

#[test]
fn a_latency_blip_does_not_collapse_the_limit() {
    // For 100 ms every request takes five times as long (a pause on the target), then all is
    // as before. The limit may dip (by at most 30% a window, after two slow windows in a
    // row), but not by half, nor to the floor, and it is back within a second.
    let phases = [
        saturated(8, 16),
        Phase {
            from_ms: 3000,
            ..saturated(8, 80)
        },
        Phase {
            from_ms: 3100,
            ..saturated(8, 16)
        },
    ];
    let trace = run(default_limit(20), &phases, 0.1, 6000);
    let (before, _) = trace.range(2000, 3000);
    let (dip, _) = trace.range(3000, 4000);
    let (lo, hi) = trace.range(4200, 6000);
    assert!(
        dip > before / 2 && dip > 2,
        "the blip took the limit from {before} to {dip}"
    );
    let every: Vec<u32> = trace.limits.iter().map(|(_, l)| *l).collect();
    assert!(lo >= 7 && hi <= 11, "after the blip: {lo}..{hi}: {every:?}");
}

#[test]
fn a_target_that_is_not_kept_busy_keeps_its_limit() {
    // 100 req/s at 16 ms on 4 workers is 40% busy: nothing says what the target could take
    // beyond that, so the limit neither grows without bound nor shrinks.
    let phase = Phase {
        rate: Some(100.0),
        ..saturated(4, 16)
    };
    let trace = run(default_limit(20), &[phase], 0.3, 10_000);
    let (lo, hi) = trace.range(0, 10_000);
    assert!(lo >= 20 && hi <= 20, "limit moved to {lo}..{hi}");
}

#[test]
fn a_cut_the_latency_does_not_follow_is_undone() {
    // A target with far more workers than the limit's ceiling of 40, on a machine that runs
    // short of cores after 3 s: every answer takes 5 times as long whatever the concurrency,
    // which looks like clear queueing at a limit of 40. The cut it invites answers fewer
    // requests per second (nothing queued inside the target), so it is undone: the limit
    // does not collapse to a few requests, where the others would wait in Spindle's queues.
    let phases = [
        saturated(1000, 2),
        Phase {
            from_ms: 3000,
            ..saturated(1000, 10)
        },
    ];
    let trace = run(AdaptiveLimit::new(20, 2, 40, 1.1), &phases, 0.1, 10_000);
    let (lo, hi) = trace.range(2000, 3000);
    assert!(lo == 40 && hi == 40, "before: {lo}..{hi}");
    let after: Vec<u32> = trace
        .limits
        .iter()
        .filter(|(t, _)| *t >= 3000)
        .map(|(_, l)| *l)
        .collect();
    let at_40 = after.iter().filter(|&&l| l == 40).count();
    assert!(
        // Below 40 only while a cut (to 28) or a step down (to 39) is judged and undone.
        *after.iter().min().expect("samples") >= 28 && at_40 * 10 >= after.len() * 7,
        "while slow: {after:?}"
    );
}
