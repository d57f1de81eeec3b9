//! Dates and times for ArcGIS `date` parameters (epoch milliseconds or ISO-8601),
//! kept within what Python's `datetime` can hold (years 1–9999, microsecond
//! precision). A time keeps what the user wrote: an ISO string without an offset is
//! naive, one with an offset keeps it; epoch milliseconds are UTC.

use std::fmt;

/// A date and time with microsecond precision, year 1–9999, naive or with a UTC
/// offset (whole minutes). The fields are the local (wall-clock) ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DateTime {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    microsecond: u32,
    /// Minutes east of UTC; `None` for a naive time.
    offset_minutes: Option<i32>,
    /// A calendar date only (Python `datetime.date`): no time, no offset.
    date_only: bool,
}

/// The former name of [`DateTime`], from when every date was converted to UTC.
pub type UtcDateTime = DateTime;

const MICROS_PER_DAY: i128 = 86_400_000_000;

impl DateTime {
    /// From milliseconds since 1970-01-01T00:00:00Z (ArcGIS `date`), in UTC; `None`
    /// outside years 1–9999.
    pub fn from_epoch_millis(ms: i64) -> Option<DateTime> {
        DateTime::from_epoch_micros(i128::from(ms) * 1000)
    }

    /// From microseconds since the epoch, in UTC; `None` outside years 1–9999.
    pub fn from_epoch_micros(us: i128) -> Option<DateTime> {
        DateTime::from_local_micros(us, Some(0))
    }

    fn from_local_micros(us: i128, offset_minutes: Option<i32>) -> Option<DateTime> {
        let days = us.div_euclid(MICROS_PER_DAY);
        let rest = us.rem_euclid(MICROS_PER_DAY);
        let days = i64::try_from(days).ok()?;
        let (year, month, day) = civil_from_days(days);
        if !(1..=9999).contains(&year) {
            return None;
        }
        let secs = rest / 1_000_000;
        Some(DateTime {
            year: i32::try_from(year).ok()?,
            month,
            day,
            hour: (secs / 3600) as u32,
            minute: (secs / 60 % 60) as u32,
            second: (secs % 60) as u32,
            microsecond: (rest % 1_000_000) as u32,
            offset_minutes,
            date_only: false,
        })
    }

    /// The wall-clock fields as microseconds since 0001-01-01 shifted to the epoch
    /// (the offset not applied).
    fn local_micros(&self) -> i128 {
        let days = days_from_civil(i64::from(self.year), self.month, self.day);
        let secs =
            i128::from(self.hour) * 3600 + i128::from(self.minute) * 60 + i128::from(self.second);
        i128::from(days) * MICROS_PER_DAY + secs * 1_000_000 + i128::from(self.microsecond)
    }

    /// Microseconds since the epoch; a naive time is taken as UTC.
    pub fn epoch_micros(&self) -> i128 {
        self.local_micros() - i128::from(self.offset_minutes.unwrap_or(0)) * 60_000_000
    }

    /// The same instant in UTC (a naive time is taken as UTC); `None` when that
    /// leaves years 1–9999.
    pub fn to_utc(&self) -> Option<DateTime> {
        DateTime::from_epoch_micros(self.epoch_micros())
    }

    /// The calendar date alone (Python `datetime.date`), for a notebook whose
    /// default is a date: the time and offset are dropped.
    pub fn to_date(&self) -> DateTime {
        DateTime {
            hour: 0,
            minute: 0,
            second: 0,
            microsecond: 0,
            offset_minutes: None,
            date_only: true,
            ..*self
        }
    }

    /// Is this a calendar date alone?
    pub fn is_date_only(&self) -> bool {
        self.date_only
    }

    /// Is there no UTC offset?
    pub fn is_naive(&self) -> bool {
        self.offset_minutes.is_none()
    }

    /// Minutes east of UTC, `None` when naive.
    pub fn offset_minutes(&self) -> Option<i32> {
        self.offset_minutes
    }

    /// Parses ISO-8601 as Python's `datetime.fromisoformat` does for the extended
    /// format: `YYYY-MM-DD`, optionally `T` or space, `HH:MM[:SS[.ffffff]]` (more
    /// fraction digits are truncated, `,` also accepted), and an optional `Z` or
    /// `±HH[:MM]` offset. What was written is kept: no offset gives a naive time, an
    /// offset is kept as it is (`Z` and `+00:00` are UTC).
    pub fn parse_iso8601(text: &str) -> Result<DateTime, String> {
        let bad = || format!("{text:?} is not an ISO-8601 date");
        let b = text.as_bytes();
        let num = |range: std::ops::Range<usize>| -> Result<u32, String> {
            let part = b.get(range).ok_or_else(bad)?;
            if part.iter().all(u8::is_ascii_digit) {
                Ok(part.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
            } else {
                Err(bad())
            }
        };
        if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (mut hour, mut minute, mut second, mut micro) = (0, 0, 0, 0);
        let mut i = 10;
        if i < b.len() && (b[i] == b'T' || b[i] == b't' || b[i] == b' ') {
            i += 1;
            hour = num(i..i + 2)?;
            if b.get(i + 2) != Some(&b':') {
                return Err(bad());
            }
            minute = num(i + 3..i + 5)?;
            i += 5;
            if b.get(i) == Some(&b':') {
                second = num(i + 1..i + 3)?;
                i += 3;
                if matches!(b.get(i), Some(b'.' | b',')) {
                    i += 1;
                    let start = i;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    if i == start {
                        return Err(bad());
                    }
                    let mut frac: String = text[start..i].chars().take(6).collect();
                    while frac.len() < 6 {
                        frac.push('0');
                    }
                    micro = frac.parse().map_err(|_| bad())?;
                }
            }
        }
        let mut offset_minutes: Option<i32> = None;
        if i < b.len() {
            match b[i] {
                b'Z' | b'z' if i + 1 == b.len() => offset_minutes = Some(0),
                sign @ (b'+' | b'-') => {
                    let oh = num(i + 1..i + 3)?;
                    let om = match b.len() - (i + 3) {
                        0 => 0,
                        2 => num(i + 3..i + 5)?,
                        3 if b[i + 3] == b':' => num(i + 4..i + 6)?,
                        _ => return Err(bad()),
                    };
                    if oh > 23 || om > 59 {
                        return Err(format!("{text:?} has an invalid UTC offset"));
                    }
                    let minutes = (oh * 60 + om) as i32;
                    offset_minutes = Some(if sign == b'-' { -minutes } else { minutes });
                }
                _ => return Err(bad()),
            }
        }
        if !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(i64::from(year), month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return Err(format!("{text:?} is not a valid date and time"));
        }
        if year == 0 {
            return Err(format!("{text:?} is outside years 1-9999"));
        }
        Ok(DateTime {
            year: year as i32,
            month,
            day,
            hour,
            minute,
            second,
            microsecond: micro,
            offset_minutes,
            date_only: false,
        })
    }

    /// ISO-8601: `2021-12-31T00:00:00` (naive), with `Z` for UTC or `+02:00` for an
    /// offset, and `.ffffff` when there are microseconds.
    pub fn to_iso8601(&self) -> String {
        if self.date_only {
            return format!("{:04}-{:02}-{:02}", self.year, self.month, self.day);
        }
        let mut s = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
        if self.microsecond != 0 {
            s.push_str(&format!(".{:06}", self.microsecond));
        }
        match self.offset_minutes {
            None => {}
            Some(0) => s.push('Z'),
            Some(m) => {
                let sign = if m < 0 { '-' } else { '+' };
                s.push_str(&format!("{sign}{:02}:{:02}", m.abs() / 60, m.abs() % 60));
            }
        }
        s
    }

    /// The Python literal, with `module` the name the `datetime` module is bound to:
    /// `M.date(Y, mo, d)` for a date alone, `M.datetime(Y, mo, d, h, mi, s[, us])`
    /// for a naive time, with
    /// `tzinfo=M.timezone.utc` for UTC or `tzinfo=M.timezone(M.timedelta(hours=2))`
    /// for another offset.
    pub fn python_literal(&self, module: &str) -> String {
        if self.date_only {
            return format!("{module}.date({}, {}, {})", self.year, self.month, self.day);
        }
        let mut s = format!(
            "{module}.datetime({}, {}, {}, {}, {}, {}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
        if self.microsecond != 0 {
            s.push_str(&format!(", {}", self.microsecond));
        }
        match self.offset_minutes {
            None => {}
            Some(0) => s.push_str(&format!(", tzinfo={module}.timezone.utc")),
            Some(m) => {
                let (hours, minutes) = (m / 60, m % 60);
                let delta = match (hours, minutes) {
                    (h, 0) => format!("hours={h}"),
                    (0, mi) => format!("minutes={mi}"),
                    (h, mi) => format!("hours={h}, minutes={mi}"),
                };
                s.push_str(&format!(
                    ", tzinfo={module}.timezone({module}.timedelta({delta}))"
                ));
            }
        }
        s.push(')');
        s
    }

    pub fn year(&self) -> i32 {
        self.year
    }
    pub fn month(&self) -> u32 {
        self.month
    }
    pub fn day(&self) -> u32 {
        self.day
    }
    pub fn hour(&self) -> u32 {
        self.hour
    }
    pub fn minute(&self) -> u32 {
        self.minute
    }
    pub fn second(&self) -> u32 {
        self.second
    }
    pub fn microsecond(&self) -> u32 {
        self.microsecond
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_iso8601())
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        _ => 28,
    }
}

// Howard Hinnant's civil calendar algorithms (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_millis_convert() {
        let dt = DateTime::from_epoch_millis(1_640_908_800_000).unwrap();
        assert_eq!(dt.to_iso8601(), "2021-12-31T00:00:00Z");
        let dt = DateTime::from_epoch_millis(-1).unwrap();
        assert_eq!(dt.to_iso8601(), "1969-12-31T23:59:59.999000Z");
        assert_eq!(
            dt.python_literal("datetime"),
            "datetime.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=datetime.timezone.utc)"
        );
        assert!(DateTime::from_epoch_millis(i64::MAX).is_none());
        assert!(DateTime::from_epoch_millis(-62_135_596_800_001).is_none());
        assert!(DateTime::from_epoch_millis(-62_135_596_800_000).is_some());
    }

    #[test]
    fn iso_strings_keep_what_was_written() {
        let p = |s| DateTime::parse_iso8601(s).map(|d| d.to_iso8601());
        assert_eq!(p("2021-12-31"), Ok("2021-12-31T00:00:00".into()));
        assert_eq!(p("2021-12-31T10:20"), Ok("2021-12-31T10:20:00".into()));
        assert_eq!(
            p("2021-12-31 10:20:30.5"),
            Ok("2021-12-31T10:20:30.500000".into())
        );
        assert_eq!(
            p("2021-12-31T10:20:30.1234567Z"),
            Ok("2021-12-31T10:20:30.123456Z".into())
        );
        assert_eq!(
            p("2022-01-01T01:00:00+02:00"),
            Ok("2022-01-01T01:00:00+02:00".into())
        );
        assert_eq!(
            p("2022-01-01T01:00:00+00:00"),
            Ok("2022-01-01T01:00:00Z".into())
        );
        assert_eq!(
            p("2021-12-31T23:00:00-0130"),
            Ok("2021-12-31T23:00:00-01:30".into())
        );
        // Python keeps the local fields of an aware time within years 1-9999.
        assert_eq!(
            p("9999-12-31T23:00:00-05:00"),
            Ok("9999-12-31T23:00:00-05:00".into())
        );
        assert!(p("0000-12-31").is_err());
        assert!(p("2021-02-29").is_err());
        assert_eq!(p("2024-02-29"), Ok("2024-02-29T00:00:00".into()));
        assert!(p("2021-12-31T24:00").is_err());
        assert!(p("yesterday").is_err());
        assert!(p("2021-12-31T10:20:30+").is_err());
        assert!(p("2021-12-31X").is_err());
    }

    #[test]
    fn python_literals_say_naive_utc_or_offset() {
        let lit = |s| DateTime::parse_iso8601(s).unwrap().python_literal("m");
        assert_eq!(lit("2024-01-01"), "m.datetime(2024, 1, 1, 0, 0, 0)");
        assert_eq!(
            lit("2024-01-01T10:00Z"),
            "m.datetime(2024, 1, 1, 10, 0, 0, tzinfo=m.timezone.utc)"
        );
        assert_eq!(
            lit("2024-01-01T10:00+02:00"),
            "m.datetime(2024, 1, 1, 10, 0, 0, tzinfo=m.timezone(m.timedelta(hours=2)))"
        );
        assert_eq!(
            lit("2024-01-01T10:00-01:30"),
            "m.datetime(2024, 1, 1, 10, 0, 0, tzinfo=m.timezone(m.timedelta(hours=-1, minutes=-30)))"
        );
        assert_eq!(
            lit("2024-01-01T10:00+00:45"),
            "m.datetime(2024, 1, 1, 10, 0, 0, tzinfo=m.timezone(m.timedelta(minutes=45)))"
        );
        let date = DateTime::parse_iso8601("2024-03-01").unwrap().to_date();
        assert_eq!(date.python_literal("m"), "m.date(2024, 3, 1)");
        assert_eq!(date.to_iso8601(), "2024-03-01");
        let utc = DateTime::parse_iso8601("2024-01-01T01:00+02:00")
            .unwrap()
            .to_utc()
            .unwrap();
        assert_eq!(utc.to_iso8601(), "2023-12-31T23:00:00Z");
    }
}
