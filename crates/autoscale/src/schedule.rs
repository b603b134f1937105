//! Scheduled actions: `Recurrence` (five-field cron, UTC), `StartTime`, `EndTime`.

/// A parsed cron expression: minute, hour, day of month, month, day of week.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Vec<bool>,
    months: Vec<bool>,
    weekdays: Vec<bool>,
    /// Day-of-month and day-of-week both restricted: either may match (as in cron).
    day_or: bool,
}

fn field(text: &str, lo: u32, hi: u32, what: &str) -> Result<(Vec<bool>, bool), String> {
    let mut set = vec![false; hi as usize + 1];
    let restricted = text != "*" && text != "?";
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("bad step `{s}` in the {what} field"))?,
            ),
            None => (part, 1),
        };
        let num = |s: &str| {
            s.parse::<u32>()
                .ok()
                .filter(|n| (lo..=hi).contains(n))
                .ok_or_else(|| format!("`{s}` is not a {what} ({lo}-{hi})"))
        };
        let (a, b) = if range == "*" || range == "?" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (num(a)?, num(b)?)
        } else {
            let a = num(range)?;
            (a, if step > 1 { hi } else { a })
        };
        if a > b {
            return Err(format!(
                "range `{range}` runs backwards in the {what} field"
            ));
        }
        let mut v = a;
        while v <= b {
            set[v as usize] = true;
            v += step;
        }
    }
    Ok((set, restricted))
}

impl Cron {
    /// Parses `m h dom mon dow` (numbers, `*`, lists, ranges, steps; Sunday is 0 or 7).
    pub fn parse(text: &str) -> Result<Cron, String> {
        let f: Vec<&str> = text.split_whitespace().collect();
        if f.len() != 5 {
            return Err(format!(
                "Recurrence `{text}` must have 5 fields (minute hour day-of-month month day-of-week), found {}",
                f.len()
            ));
        }
        let (minutes, _) = field(f[0], 0, 59, "minute")?;
        let (hours, _) = field(f[1], 0, 23, "hour")?;
        let (days, dr) = field(f[2], 1, 31, "day-of-month")?;
        let (months, _) = field(f[3], 1, 12, "month")?;
        let (mut weekdays, wr) = field(f[4], 0, 7, "day-of-week")?;
        if weekdays[7] {
            weekdays[0] = true;
        }
        Ok(Cron {
            minutes,
            hours,
            days,
            months,
            weekdays,
            day_or: dr && wr,
        })
    }

    /// Whether the minute starting at unix second `t` (a multiple of 60) matches.
    pub fn matches(&self, t: u64) -> bool {
        let c = Civil::from_unix(t);
        let day = self.days[c.day as usize];
        let wd = self.weekdays[c.weekday as usize];
        let day_ok = if self.day_or { day || wd } else { day && wd };
        self.minutes[c.minute as usize]
            && self.hours[c.hour as usize]
            && self.months[c.month as usize]
            && day_ok
    }
}

/// A UTC calendar time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Sunday.
    pub weekday: u32,
}

impl Civil {
    pub fn from_unix(t: u64) -> Civil {
        let days = (t / 86_400) as i64;
        let rem = t % 86_400;
        // Howard Hinnant's days-to-civil algorithm.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
            weekday: ((days + 4).rem_euclid(7)) as u32,
        }
    }
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an ISO 8601 UTC time such as `2026-11-27T10:00:00Z` to unix seconds.
pub fn parse_time(text: &str) -> Result<u64, String> {
    let bad = || format!("`{text}` is not a UTC time like 2026-11-27T10:00:00Z");
    let s = text.strip_suffix('Z').ok_or_else(bad)?;
    let (date, time) = s.split_once('T').ok_or_else(bad)?;
    let d: Vec<u32> = date
        .split('-')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let time = time.split('.').next().unwrap_or(time);
    let h: Vec<u32> = time
        .split(':')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    if d.len() != 3
        || h.len() != 3
        || !(1..=12).contains(&d[1])
        || !(1..=31).contains(&d[2])
        || h[0] > 23
        || h[1] > 59
        || h[2] > 60
    {
        return Err(bad());
    }
    let days = days_from_civil(i64::from(d[0]), d[1], d[2]);
    let t = days * 86_400 + i64::from(h[0]) * 3600 + i64::from(h[1]) * 60 + i64::from(h[2]);
    u64::try_from(t).map_err(|_| bad())
}

/// A validated scheduled action.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledAction {
    pub name: String,
    pub recurrence: Option<Cron>,
    pub start: Option<u64>,
    pub end: Option<u64>,
    pub min: Option<u32>,
    pub max: Option<u32>,
    pub desired: Option<u32>,
}

impl ScheduledAction {
    /// Whether the action fires at some second in `(after, now]`: a one-off at `StartTime`,
    /// a recurring one at every matching minute between `StartTime` and `EndTime`. A tick
    /// that was missed by more than an hour does not replay old occurrences.
    pub fn fires(&self, after: u64, now: u64) -> bool {
        if now <= after {
            return false;
        }
        let from = after.max(now.saturating_sub(3600)) + 1;
        match &self.recurrence {
            None => self.start.is_some_and(|s| s >= from && s <= now),
            Some(cron) => {
                let mut m = from.div_ceil(60) * 60;
                while m <= now {
                    let in_range =
                        self.start.is_none_or(|s| m >= s) && self.end.is_none_or(|e| m <= e);
                    if in_range && cron.matches(m) {
                        return true;
                    }
                    m += 60;
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trips_and_weekday() {
        let t = parse_time("2026-11-27T10:15:30Z").unwrap();
        let c = Civil::from_unix(t);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.second),
            (2026, 11, 27, 10, 15, 30)
        );
        assert_eq!(c.weekday, 5, "27 November 2026 is a Friday");
        assert_eq!(parse_time("1970-01-01T00:00:00Z").unwrap(), 0);
        assert!(parse_time("2026-13-01T00:00:00Z").is_err());
        assert!(parse_time("2026-11-27 10:00").is_err());
    }

    #[test]
    fn cron_fields() {
        let c = Cron::parse("*/15 9-17 * * 1-5").unwrap();
        let fri_0930 = parse_time("2026-11-27T09:30:00Z").unwrap();
        let fri_0931 = parse_time("2026-11-27T09:31:00Z").unwrap();
        let sat_0930 = parse_time("2026-11-28T09:30:00Z").unwrap();
        assert!(c.matches(fri_0930));
        assert!(!c.matches(fri_0931));
        assert!(!c.matches(sat_0930));
        for bad in ["* * * *", "61 * * * *", "5-1 * * * *", "*/0 * * * *"] {
            assert!(Cron::parse(bad).is_err(), "{bad}");
        }
        // Day-of-month or day-of-week when both are restricted.
        let c = Cron::parse("0 0 1 * 0").unwrap();
        assert!(c.matches(parse_time("2026-11-01T00:00:00Z").unwrap()));
        assert!(
            c.matches(parse_time("2026-11-29T00:00:00Z").unwrap()),
            "a Sunday"
        );
    }

    #[test]
    fn actions_fire_once_in_their_range() {
        let start = parse_time("2026-11-27T10:00:00Z").unwrap();
        let once = ScheduledAction {
            name: "once".into(),
            recurrence: None,
            start: Some(start),
            end: None,
            min: None,
            max: None,
            desired: Some(5),
        };
        assert!(!once.fires(start - 10, start - 1));
        assert!(once.fires(start - 1, start));
        assert!(!once.fires(start, start + 1));
        let every = ScheduledAction {
            recurrence: Some(Cron::parse("* * * * *").unwrap()),
            end: Some(start + 120),
            ..once.clone()
        };
        assert!(every.fires(start + 59, start + 60));
        assert!(!every.fires(start + 60, start + 119));
        assert!(!every.fires(start + 120, start + 240), "after EndTime");
    }
}
