//! POSIX cron as `on.schedule[].cron` uses it: five fields (minute, hour, day of month,
//! month, day of week), each `*`, a number, a range `a-b`, a step `*/n` or `a-b/n`, or a
//! comma list of those; months and weekdays also by three-letter name. Times are UTC.

/// A parsed schedule: for each field, the set of values it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    pub minutes: u64,
    pub hours: u64,
    pub days: u64,
    pub months: u64,
    pub weekdays: u64,
    /// Both day fields restricted: POSIX cron then matches either of them.
    pub day_or: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cron `{expr}`: {message}")]
pub struct CronError {
    pub expr: String,
    pub message: String,
}

const FIELDS: [(&str, u32, u32, &[&str]); 5] = [
    ("minute", 0, 59, &[]),
    ("hour", 0, 23, &[]),
    ("day of month", 1, 31, &[]),
    (
        "month",
        1,
        12,
        &[
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ],
    ),
    (
        "day of week",
        0,
        6,
        &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    ),
];

impl Cron {
    pub fn parse(expr: &str) -> Result<Cron, CronError> {
        let fail = |m: String| CronError {
            expr: expr.to_string(),
            message: m,
        };
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(fail(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            )));
        }
        let mut sets = [0u64; 5];
        for (i, f) in fields.iter().enumerate() {
            sets[i] = field(f, FIELDS[i]).map_err(fail)?;
        }
        Ok(Cron {
            minutes: sets[0],
            hours: sets[1],
            days: sets[2],
            months: sets[3],
            weekdays: sets[4],
            day_or: fields[2] != "*" && fields[4] != "*",
        })
    }

    /// Whether the schedule fires at this UTC minute (weekday 0 = Sunday).
    pub fn matches(&self, minute: u32, hour: u32, day: u32, month: u32, weekday: u32) -> bool {
        let has = |set: u64, v: u32| v < 64 && set & (1 << v) != 0;
        let d = has(self.days, day);
        let w = has(self.weekdays, weekday);
        let day_ok = if self.day_or { d || w } else { d && w };
        has(self.minutes, minute) && has(self.hours, hour) && has(self.months, month) && day_ok
    }
}

fn value(s: &str, (name, lo, hi, names): (&str, u32, u32, &[&str])) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(lo + i as u32);
    }
    let v: u32 = s
        .parse()
        .map_err(|_| format!("{name}: `{s}` is not a number"))?;
    if v < lo || v > hi {
        return Err(format!("{name}: {v} is outside {lo}-{hi}"));
    }
    Ok(v)
}

fn field(f: &str, spec: (&str, u32, u32, &[&str])) -> Result<u64, String> {
    let (name, lo, hi, _) = spec;
    let mut set = 0u64;
    for item in f.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{name}: step `{s}` is not a positive number"))?;
                (r, step)
            }
            None => (item, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a, spec)?, value(b, spec)?);
            if a > b {
                return Err(format!("{name}: range {a}-{b} runs backwards"));
            }
            (a, b)
        } else if item.contains('/') {
            // `5/15` means from 5 to the end in steps of 15.
            (value(range, spec)?, hi)
        } else {
            let v = value(range, spec)?;
            (v, v)
        };
        let mut v = a;
        while v <= b {
            set |= 1 << v;
            v += step;
        }
    }
    Ok(set)
}
