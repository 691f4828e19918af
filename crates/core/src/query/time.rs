//! Time in queries: date ranges (absolute or relative), the time zone they are read in,
//! and the buckets a trend counts in. Everything resolves to UTC instants here, against a
//! `now` the caller passes in, so it is testable without a clock.

use crate::code::FieldError;
use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::Value;

/// How wide a trend's buckets are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Granularity {
    Hour,
    Day,
    Week,
    Month,
}

impl Granularity {
    pub const NAMES: &'static str = "hour, day, week, month";

    pub fn parse(s: &str) -> Option<Granularity> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "hour" | "hourly" | "1h" => Granularity::Hour,
            "day" | "daily" | "1d" | "date" => Granularity::Day,
            "week" | "weekly" | "1w" => Granularity::Week,
            "month" | "monthly" => Granularity::Month,
            _ => return None,
        })
    }

    /// The unit `date_trunc` takes. Weeks start on Monday (ISO 8601) in both engines.
    pub const fn sql_unit(self) -> &'static str {
        match self {
            Granularity::Hour => "'hour'",
            Granularity::Day => "'day'",
            Granularity::Week => "'week'",
            Granularity::Month => "'month'",
        }
    }

    pub fn truncate(self, t: NaiveDateTime) -> NaiveDateTime {
        let d = t.date();
        match self {
            Granularity::Hour => d.and_hms_opt(t.time().hour_of(), 0, 0).expect("valid hour"),
            Granularity::Day => d.and_time(NaiveTime::MIN),
            Granularity::Week => {
                (d - Duration::days(d.weekday().num_days_from_monday() as i64)).and_time(NaiveTime::MIN)
            }
            Granularity::Month => d.with_day(1).expect("day 1").and_time(NaiveTime::MIN),
        }
    }

    pub fn next(self, t: NaiveDateTime) -> NaiveDateTime {
        match self {
            Granularity::Hour => t + Duration::hours(1),
            Granularity::Day => t + Duration::days(1),
            Granularity::Week => t + Duration::days(7),
            Granularity::Month => t.checked_add_months(Months::new(1)).expect("month in range"),
        }
    }

    /// How an answer labels a bucket: a date, or a local date-time for hours.
    pub fn label(self, t: NaiveDateTime) -> String {
        match self {
            Granularity::Hour => t.format("%Y-%m-%dT%H:00:00").to_string(),
            _ => t.format("%Y-%m-%d").to_string(),
        }
    }
}

trait HourOf {
    fn hour_of(&self) -> u32;
}
impl HourOf for NaiveTime {
    fn hour_of(&self) -> u32 {
        chrono::Timelike::hour(self)
    }
}

/// One end of a range, as written.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    /// A calendar date in the query's time zone. As an end it is inclusive.
    Date(NaiveDate),
    Instant(DateTime<Utc>),
    /// `-7d`: the last 7 days including today; `-24h`: 24 hours before now.
    Ago(i64, Unit),
    Now,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

/// A calendar period named by a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    Today,
    Yesterday,
    ThisWeek,
    LastWeek,
    ThisMonth,
    LastMonth,
    ThisYear,
    LastYear,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DateRange {
    Between(Bound, Bound),
    Named(Named),
}

impl Default for DateRange {
    /// The last 30 days, today included.
    fn default() -> Self {
        DateRange::Between(Bound::Ago(30, Unit::Day), Bound::Now)
    }
}

/// A resolved range: UTC instants, start inclusive, end exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    pub fn len(&self) -> Duration {
        self.end - self.start
    }
}

/// The longest range a query may span.
pub const MAX_RANGE_DAYS: i64 = 3660;
/// The most buckets one trend may have.
pub const MAX_BUCKETS: usize = 10_000;

pub const RANGE_WORDS: &str =
    "today, yesterday, this_week, last_week, this_month, last_month, this_year, last_year, -Nh, -Nd, -Nw, -Nm, -Ny";

fn parse_named(s: &str) -> Option<Named> {
    Some(match s.replace([' ', '-'], "_").to_ascii_lowercase().as_str() {
        "today" => Named::Today,
        "yesterday" => Named::Yesterday,
        "this_week" | "week" => Named::ThisWeek,
        "last_week" => Named::LastWeek,
        "this_month" | "month" => Named::ThisMonth,
        "last_month" => Named::LastMonth,
        "this_year" | "year" => Named::ThisYear,
        "last_year" => Named::LastYear,
        _ => return None,
    })
}

fn parse_ago(s: &str) -> Option<Bound> {
    let rest = s.strip_prefix('-')?;
    let (n, unit) = rest.split_at(rest.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = n.parse().ok().filter(|n| *n > 0 && *n <= 100_000)?;
    let unit = match unit {
        "h" | "hour" | "hours" => Unit::Hour,
        "d" | "day" | "days" => Unit::Day,
        "w" | "week" | "weeks" => Unit::Week,
        "m" | "month" | "months" => Unit::Month,
        "y" | "year" | "years" => Unit::Year,
        _ => return None,
    };
    Some(Bound::Ago(n, unit))
}

/// Reads one bound: a date, an RFC 3339 instant, `-7d`, or `now`.
pub fn parse_bound(s: &str, at: &str) -> Result<Bound, FieldError> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("now") {
        return Ok(Bound::Now);
    }
    if let Some(b) = parse_ago(s) {
        return Ok(b);
    }
    let bound = if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        Bound::Date(d)
    } else if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        Bound::Instant(t.with_timezone(&Utc))
    } else if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        Bound::Instant(t.and_utc())
    } else {
        return Err(FieldError::new(
            at,
            format!("'{s}' is not a date (YYYY-MM-DD), an RFC 3339 time, now, or -Nd/-Nh/-Nw/-Nm/-Ny"),
        ));
    };
    // Far-off years would overflow the arithmetic on them; no analysis needs them.
    let year = match &bound {
        Bound::Date(d) => d.year(),
        Bound::Instant(t) => t.year(),
        _ => 2000,
    };
    if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
        return Err(FieldError::new(
            at,
            format!("'{s}' is out of range: dates run from year {MIN_YEAR} to {MAX_YEAR}"),
        ));
    }
    Ok(bound)
}

/// The years a date bound may name.
pub const MIN_YEAR: i32 = 1;
pub const MAX_YEAR: i32 = 9999;

/// Reads a range: a word (`this_month`, `-7d`) or `{start, end}` (also `from`/`to`,
/// `date_from`/`date_to`). A missing start is 30 days back; a missing end is now.
pub fn parse_range(v: &Value, at: &str) -> Result<DateRange, FieldError> {
    match v {
        Value::String(s) => {
            if let Some(n) = parse_named(s) {
                return Ok(DateRange::Named(n));
            }
            if let Some(b) = parse_ago(s.trim()) {
                return Ok(DateRange::Between(b, Bound::Now));
            }
            Err(FieldError::new(at, format!("unknown date range '{s}'; use {{start, end}} or one of {RANGE_WORDS}")))
        }
        Value::Object(obj) => {
            let get = |keys: &[&'static str]| -> Option<(&'static str, &Value)> {
                keys.iter().find_map(|k| obj.get(*k).filter(|v| !v.is_null()).map(|v| (*k, v)))
            };
            let bound = |found: Option<(&str, &Value)>, default: Bound| -> Result<Bound, FieldError> {
                match found {
                    None => Ok(default),
                    Some((k, Value::String(s))) => parse_bound(s, &format!("{at}.{k}")),
                    Some((k, _)) => Err(FieldError::new(format!("{at}.{k}"), "a date bound is a string")),
                }
            };
            let start = bound(get(&["start", "from", "date_from", "start_date"]), Bound::Ago(30, Unit::Day))?;
            let end = bound(get(&["end", "to", "date_to", "end_date"]), Bound::Now)?;
            Ok(DateRange::Between(start, end))
        }
        _ => Err(FieldError::new(at, "a date range is a string such as \"-7d\" or an object {start, end}")),
    }
}

/// Reads a time zone name (IANA, such as `Europe/Paris`; default UTC).
pub fn parse_tz(s: &str, at: &str) -> Result<Tz, FieldError> {
    s.trim().parse::<Tz>().map_err(|_| {
        FieldError::new(at, format!("unknown time zone '{s}'; use an IANA name such as Europe/Paris or UTC"))
    })
}

/// The UTC instant of a local wall time; in a DST gap, the first instant after it.
pub fn local_to_utc(tz: Tz, t: NaiveDateTime) -> DateTime<Utc> {
    let mut probe = t;
    for _ in 0..4 {
        if let Some(x) = tz.from_local_datetime(&probe).earliest() {
            return x.with_timezone(&Utc);
        }
        probe += Duration::minutes(30);
    }
    t.and_utc()
}

pub fn utc_to_local(tz: Tz, t: DateTime<Utc>) -> NaiveDateTime {
    tz.from_utc_datetime(&t.naive_utc()).naive_local()
}

fn midnight(tz: Tz, d: NaiveDate) -> DateTime<Utc> {
    local_to_utc(tz, d.and_time(NaiveTime::MIN))
}

impl DateRange {
    /// The range as UTC instants, and the period before it that a comparison uses: the
    /// previous calendar period for a named one, else the same length just before.
    pub fn resolve(&self, tz: Tz, now: DateTime<Utc>) -> Result<(Window, Window), String> {
        let today = utc_to_local(tz, now).date();
        let day = Duration::days(1);
        let cal = |start: NaiveDate, end: NaiveDate| Window { start: midnight(tz, start), end: midnight(tz, end) };
        let month1 = today.with_day(1).expect("day 1");
        let monday = today - Duration::days(today.weekday().num_days_from_monday() as i64);
        let jan1 = NaiveDate::from_ymd_opt(today.year(), 1, 1).expect("jan 1");
        let m = |d: NaiveDate, n: i32| {
            if n >= 0 {
                d.checked_add_months(Months::new(n as u32))
            } else {
                d.checked_sub_months(Months::new(-n as u32))
            }
            .expect("month in range")
        };
        let y = |n: i32| NaiveDate::from_ymd_opt(today.year() + n, 1, 1).expect("year in range");
        let (current, previous) = match self {
            DateRange::Named(n) => match n {
                Named::Today => (cal(today, today + day), cal(today - day, today)),
                Named::Yesterday => (cal(today - day, today), cal(today - day * 2, today - day)),
                Named::ThisWeek => (cal(monday, monday + day * 7), cal(monday - day * 7, monday)),
                Named::LastWeek => (cal(monday - day * 7, monday), cal(monday - day * 14, monday - day * 7)),
                Named::ThisMonth => (cal(month1, m(month1, 1)), cal(m(month1, -1), month1)),
                Named::LastMonth => (cal(m(month1, -1), month1), cal(m(month1, -2), m(month1, -1))),
                Named::ThisYear => (cal(jan1, y(1)), cal(y(-1), jan1)),
                Named::LastYear => (cal(y(-1), jan1), cal(y(-2), y(-1))),
            },
            DateRange::Between(start, end) => {
                let start = self.instant(start, tz, now, today, false)?;
                let end = self.instant(end, tz, now, today, true)?;
                if end <= start {
                    return Err(if end == start {
                        "the date range is empty: its end is its start".into()
                    } else {
                        "the date range ends before it starts".into()
                    });
                }
                let w = Window { start, end };
                (w, Window { start: start - w.len(), end: start })
            }
        };
        if current.len() > Duration::days(MAX_RANGE_DAYS) {
            return Err(format!("a date range spans at most {MAX_RANGE_DAYS} days"));
        }
        Ok((current, previous))
    }

    fn instant(
        &self,
        b: &Bound,
        tz: Tz,
        now: DateTime<Utc>,
        today: NaiveDate,
        is_end: bool,
    ) -> Result<DateTime<Utc>, String> {
        let tomorrow = today + Duration::days(1);
        Ok(match b {
            Bound::Now => now,
            Bound::Instant(t) => *t,
            // An end date includes its whole day.
            Bound::Date(d) => midnight(tz, if is_end { *d + Duration::days(1) } else { *d }),
            Bound::Ago(n, unit) => {
                let n = *n;
                match unit {
                    Unit::Hour => now - Duration::hours(n),
                    // Day-sized units count whole local days back from tomorrow: -7d is
                    // today and the six days before it.
                    Unit::Day => midnight(tz, tomorrow - Duration::days(n.min(MAX_RANGE_DAYS + 1))),
                    Unit::Week => midnight(tz, tomorrow - Duration::days(7 * n.min(MAX_RANGE_DAYS))),
                    Unit::Month => midnight(
                        tz,
                        tomorrow.checked_sub_months(Months::new(n.min(1200) as u32)).ok_or("date out of range")?,
                    ),
                    Unit::Year => midnight(
                        tz,
                        tomorrow.checked_sub_months(Months::new(12 * n.min(100) as u32)).ok_or("date out of range")?,
                    ),
                }
            }
        })
    }
}

/// Clips a current period that reaches past `now` to what has elapsed, and the previous
/// period to the same span from its start: this month so far against the same days of
/// last month, not against all of it.
pub fn to_date(current: Window, previous: Window, now: DateTime<Utc>) -> (Window, Window) {
    if current.end <= now || now <= current.start {
        return (current, previous);
    }
    let elapsed = now - current.start;
    (
        Window { start: current.start, end: now },
        Window { start: previous.start, end: (previous.start + elapsed).min(previous.end) },
    )
}

/// The buckets of `w` at `g` in `tz`, as local wall times, first to last.
pub fn buckets(w: Window, g: Granularity, tz: Tz) -> Result<Vec<NaiveDateTime>, String> {
    let mut out = Vec::new();
    let last = utc_to_local(tz, w.end - Duration::microseconds(1));
    let mut b = g.truncate(utc_to_local(tz, w.start));
    while b <= last {
        out.push(b);
        if out.len() > MAX_BUCKETS {
            return Err(format!("the range holds more than {MAX_BUCKETS} buckets; use a coarser granularity"));
        }
        b = g.next(b);
    }
    Ok(out)
}

/// The UTC offsets of `tz` over `w`: `(until, seconds)` pieces, the last with no end.
/// A bucket is `date_trunc(unit, ts + offset)`, with the offset picked by a CASE over
/// these pieces: plain arithmetic per row, where a time zone function per row costs 15×.
pub fn offsets(tz: Tz, w: Window) -> Vec<(Option<DateTime<Utc>>, i64)> {
    if tz == Tz::UTC {
        // No offset ever: no need to walk the window (which may span centuries).
        return vec![(None, 0)];
    }
    let off = |t: DateTime<Utc>| utc_to_local(tz, t).and_utc().timestamp() - t.timestamp();
    let mut pieces = Vec::new();
    let mut t = w.start;
    let mut cur = off(t);
    let step = Duration::hours(1);
    while t < w.end {
        let next = (t + step).min(w.end);
        let o = off(next);
        if o != cur {
            // The change lies in (t, next]: find its minute.
            let (mut lo, mut hi) = (t, next);
            while hi - lo > Duration::minutes(1) {
                let mid = lo + (hi - lo) / 2;
                if off(mid) == cur { lo = mid } else { hi = mid }
            }
            let exact = hi - Duration::seconds(hi.timestamp() % 60);
            let exact = if off(exact) == cur { hi } else { exact };
            pieces.push((Some(exact), cur));
            cur = o;
        }
        t = next;
    }
    pieces.push((None, cur));
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn absolute_end_dates_are_inclusive() {
        let r = parse_range(&json!({"start": "2026-01-01", "end": "2026-01-31"}), "r").unwrap();
        let (w, prev) = r.resolve(Tz::UTC, at("2026-03-01T00:00:00Z")).unwrap();
        assert_eq!(w.start, at("2026-01-01T00:00:00Z"));
        assert_eq!(w.end, at("2026-02-01T00:00:00Z"));
        assert_eq!(prev.end, w.start);
        assert_eq!(prev.len(), w.len());
        assert_eq!(buckets(w, Granularity::Day, Tz::UTC).unwrap().len(), 31);
    }

    #[test]
    fn relative_and_named_in_a_zone() {
        let now = at("2026-03-29T12:00:00Z");
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let (w, _) = parse_range(&json!("-7d"), "r").unwrap().resolve(paris, now).unwrap();
        assert_eq!(w.start, at("2026-03-22T23:00:00Z"));
        assert_eq!(w.end, now);
        let (m, prev) = parse_range(&json!("this_month"), "r").unwrap().resolve(paris, now).unwrap();
        assert_eq!(m.start, at("2026-02-28T23:00:00Z"));
        assert_eq!(m.end, at("2026-03-31T22:00:00Z"));
        assert_eq!(prev.start, at("2026-01-31T23:00:00Z"));
        // DST starts 2026-03-29 01:00 UTC in Paris: one piece before, one after.
        let pieces = offsets(paris, m);
        assert_eq!(pieces, vec![(Some(at("2026-03-29T01:00:00Z")), 3600), (None, 7200)]);
    }

    #[test]
    fn bad_ranges_say_why() {
        let r = parse_range(&json!({"start": "2026-02-01", "end": "2026-01-01"}), "r").unwrap();
        assert!(r.resolve(Tz::UTC, Utc::now()).unwrap_err().contains("before"));
        assert!(parse_range(&json!("fortnight"), "r").unwrap_err().message.contains("this_month"));
        assert!(parse_range(&json!({"start": "01/02/2026"}), "r").is_err());
        assert!(parse_tz("Mars/Olympus", "tz").is_err());
        assert!(parse_range(&json!({"start": "2026-01-01", "end": "+262142-12-31"}), "r").is_err());
        assert!(parse_bound("0000-06-01T00:00:00Z", "r").is_err());
        let r = parse_range(&json!({"start": "2000-01-01", "end": "2026-01-01"}), "r").unwrap();
        assert!(r.resolve(Tz::UTC, Utc::now()).unwrap_err().contains("at most"));
    }
}
