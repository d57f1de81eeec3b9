//! Cron schedules: ArcGIS's Quartz fields and POSIX five-field strings, in a time zone.
//!
//! ArcGIS scheduled tasks carry five Quartz fields (`minute hour dayOfMonth month
//! dayOfWeek`, no seconds, no year): `?` is "no specific value", day-of-month takes
//! `L` and `W`, day-of-week counts 1 = Sunday … 7 = Saturday and takes `L` and `#`.
//! `nbexec schedule add --cron` takes POSIX strings (day-of-week 0 or 7 = Sunday).
//! Both are evaluated by `croner`, the Quartz ones with its Quartz weekday numbering.
//!
//! One tolerance: the arcgis Python client's documented "weekly" example is
//! `0 0 * * 0`, POSIX-style, and 0 is no Quartz weekday. A Quartz day-of-week field
//! that names day 0 is therefore read with POSIX numbering (0 = Sunday), as the
//! client meant it.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde_json::{Value, json};

/// Which cron dialect a schedule was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// ArcGIS / Quartz: day-of-week 1 = Sunday … 7 = Saturday.
    Quartz,
    /// POSIX / Vixie: day-of-week 0 (or 7) = Sunday … 6 = Saturday.
    Posix,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Quartz => "quartz",
            Dialect::Posix => "posix",
        }
    }

    pub fn parse(s: &str) -> Option<Dialect> {
        match s {
            "quartz" => Some(Dialect::Quartz),
            "posix" => Some(Dialect::Posix),
            _ => None,
        }
    }
}

/// ArcGIS's `cronSchedule` object: the five fields as given, plus (an nbexec
/// extension, Quartz's own first field) an optional `second`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronFields {
    /// `None`: at second 0 (ArcGIS's five fields).
    pub second: Option<String>,
    pub minute: String,
    pub hour: String,
    pub day_of_month: String,
    pub month: String,
    pub day_of_week: String,
}

impl CronFields {
    /// Splits a five-field string (`"0 6 * * 1-5"`), or six fields with seconds
    /// first (`"*/5 * * * * *"`).
    pub fn split(expr: &str) -> Result<CronFields, CronError> {
        let mut parts: Vec<&str> = expr.split_whitespace().collect();
        let second = match parts.len() {
            5 => None,
            6 => Some(parts.remove(0).to_owned()),
            n => {
                return Err(CronError(format!(
                    "cron expression {expr:?} has {n} fields; expected 5 (minute hour day-of-month month day-of-week), or 6 with seconds first"
                )));
            }
        };
        Ok(CronFields {
            second,
            minute: parts[0].into(),
            hour: parts[1].into(),
            day_of_month: parts[2].into(),
            month: parts[3].into(),
            day_of_week: parts[4].into(),
        })
    }

    /// `"minute hour dayOfMonth month dayOfWeek"`, with `second` first when set.
    pub fn expression(&self) -> String {
        let five = format!(
            "{} {} {} {} {}",
            self.minute, self.hour, self.day_of_month, self.month, self.day_of_week
        );
        match &self.second {
            Some(s) => format!("{s} {five}"),
            None => five,
        }
    }

    /// ArcGIS's `cronSchedule` JSON.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "minute": self.minute,
            "hour": self.hour,
            "dayOfMonth": self.day_of_month,
            "month": self.month,
            "dayOfWeek": self.day_of_week,
        });
        if let Some(s) = &self.second {
            v["second"] = Value::String(s.clone());
        }
        v
    }
}

/// A cron expression or time zone that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CronError(pub String);

/// A time zone by IANA name (`Europe/Berlin`, `UTC`).
pub fn parse_tz(name: &str) -> Result<Tz, CronError> {
    Tz::from_str(name).map_err(|_| {
        CronError(format!(
            "unknown time zone {name:?} (use an IANA name such as UTC or Europe/Berlin)"
        ))
    })
}

/// A parsed schedule: the fields as written, their dialect, the time zone in which
/// they are read, and the evaluator.
#[derive(Clone)]
pub struct Schedule {
    pub dialect: Dialect,
    pub fields: CronFields,
    pub tz: Tz,
    cron: Cron,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("dialect", &self.dialect)
            .field("fields", &self.fields)
            .field("tz", &self.tz)
            .finish()
    }
}

impl Schedule {
    /// A POSIX five-field expression (`0 6 * * 1-5`) in time zone `tz`.
    pub fn posix(expr: &str, tz: Tz) -> Result<Schedule, CronError> {
        Schedule::new(Dialect::Posix, CronFields::split(expr)?, tz)
    }

    /// ArcGIS's five Quartz fields as one string (`0 0 ? * 2-6`) in time zone `tz`.
    pub fn quartz(expr: &str, tz: Tz) -> Result<Schedule, CronError> {
        Schedule::new(Dialect::Quartz, CronFields::split(expr)?, tz)
    }

    pub fn new(dialect: Dialect, fields: CronFields, tz: Tz) -> Result<Schedule, CronError> {
        let expr = fields.expression();
        let second = fields.second.clone().unwrap_or_else(|| "0".into());
        for (name, value) in [
            ("second", &second),
            ("minute", &fields.minute),
            ("hour", &fields.hour),
            ("dayOfMonth", &fields.day_of_month),
            ("month", &fields.month),
            ("dayOfWeek", &fields.day_of_week),
        ] {
            if value.trim().is_empty() || value.split_whitespace().count() != 1 {
                return Err(CronError(format!(
                    "cron field {name} must be one non-empty word, got {value:?}"
                )));
            }
        }
        let five = |dow: &str| {
            format!(
                "{second} {} {} {} {} {dow}",
                fields.minute, fields.hour, fields.day_of_month, fields.month
            )
        };
        let (pattern, quartz_weekdays) = match dialect {
            Dialect::Posix => {
                if fields.day_of_month.contains('?') || fields.day_of_week.contains('?') {
                    return Err(CronError(format!(
                        "cron expression {expr:?}: `?` is Quartz syntax (use --quartz, or `*`)"
                    )));
                }
                (five(&fields.day_of_week), false)
            }
            Dialect::Quartz => match posix_weekdays_to_quartz(&fields.day_of_week) {
                Some(dow) => (five(&dow), true),
                None => (five(&fields.day_of_week), true),
            },
        };
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .year(Year::Disallowed)
            .alternative_weekdays(quartz_weekdays)
            .build()
            .parse(&pattern)
            .map_err(|e| CronError(format!("cron expression {expr:?}: {e}")))?;
        // A field croner accepts can still never match (`0 0 31 2 *`): refuse it now,
        // not at the first fire.
        let probe = Utc::now().with_timezone(&tz);
        if cron.find_next_occurrence(&probe, false).is_err() {
            return Err(CronError(format!("cron expression {expr:?} never fires")));
        }
        Ok(Schedule {
            dialect,
            fields,
            tz,
            cron,
        })
    }

    /// The first fire time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The fields as one string, as written.
    pub fn expression(&self) -> String {
        self.fields.expression()
    }
}

/// A Quartz day-of-week field that names day 0 (POSIX Sunday; no Quartz weekday),
/// rewritten in Quartz numbering (every weekday number + 1, 7 = Sunday too); `None`
/// when the field is Quartz already.
fn posix_weekdays_to_quartz(field: &str) -> Option<String> {
    // The weekday numbers of a field: what stands before `-`, `,`, `L`, `#` and
    // `/`, not the step after `/` or the nth after `#`.
    let mut names_zero = false;
    let mut out = String::new();
    for item in field.split(',') {
        let (head, tail) = match item.find(['/', '#']) {
            Some(i) => item.split_at(i),
            None => (item, ""),
        };
        if !out.is_empty() {
            out.push(',');
        }
        // A range up to POSIX 7 (Sunday again) ends on Saturday, Quartz 7, and names
        // Sunday (Quartz 1) on its own when its steps reach 7 and it did not start there.
        if let Some((from, "7")) = head.split_once('-')
            && let Ok(a) = from.parse::<u32>()
        {
            let step = tail
                .strip_prefix('/')
                .and_then(|s| s.parse::<u32>().ok())
                .filter(|&s| s > 0)
                .unwrap_or(1);
            names_zero |= a == 0;
            out.push_str(&format!("{}-7{tail}", a + 1));
            if a != 0 && a < 7 && (7 - a) % step == 0 {
                out.push_str(",1");
            }
            continue;
        }
        let mut rewritten = String::new();
        for (i, part) in head.split('-').enumerate() {
            if i > 0 {
                rewritten.push('-');
            }
            let digits: String = part.chars().take_while(|c| c.is_ascii_digit()).collect();
            let rest = &part[digits.len()..];
            match digits.parse::<u32>() {
                Ok(n) => {
                    if n == 0 {
                        names_zero = true;
                    }
                    let q = if n == 7 { 1 } else { n + 1 };
                    rewritten.push_str(&format!("{q}{rest}"));
                }
                Err(_) => rewritten.push_str(part),
            }
        }
        out.push_str(&rewritten);
        out.push_str(tail);
    }
    names_zero.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// Each schedule against the next fire times expected after a given instant
    /// (all written in UTC).
    #[test]
    fn next_fire_times_table() {
        let table: &[(Dialect, &str, &str, &str, &[&str])] = &[
            // POSIX, UTC: weekdays at 06:00. 2026-11-27 is a Friday.
            (
                Dialect::Posix,
                "0 6 * * 1-5",
                "UTC",
                "2026-11-27T06:00:00Z",
                &["2026-11-30T06:00:00Z", "2026-12-01T06:00:00Z"],
            ),
            // Quartz 2-6 is Monday..Friday.
            (
                Dialect::Quartz,
                "0 6 ? * 2-6",
                "UTC",
                "2026-11-27T06:00:00Z",
                &["2026-11-30T06:00:00Z", "2026-12-01T06:00:00Z"],
            ),
            // Quartz 1 = Sunday; 7 = Saturday.
            (
                Dialect::Quartz,
                "30 12 ? * 1",
                "UTC",
                "2026-11-27T00:00:00Z",
                &["2026-11-29T12:30:00Z", "2026-12-06T12:30:00Z"],
            ),
            (
                Dialect::Quartz,
                "0 0 ? * 7",
                "UTC",
                "2026-11-27T00:00:00Z",
                &["2026-11-28T00:00:00Z", "2026-12-05T00:00:00Z"],
            ),
            // nbexec's sixth (leading) field: seconds.
            (
                Dialect::Posix,
                "*/20 * * * * *",
                "UTC",
                "2026-11-27T10:00:30Z",
                &["2026-11-27T10:00:40Z", "2026-11-27T10:01:00Z"],
            ),
            // ArcGIS doc example: every minute.
            (
                Dialect::Quartz,
                "*/1 * * * ?",
                "UTC",
                "2026-11-27T10:00:30Z",
                &["2026-11-27T10:01:00Z", "2026-11-27T10:02:00Z"],
            ),
            // The arcgis client's "weekly" `0 0 * * 0`: POSIX Sunday, tolerated.
            (
                Dialect::Quartz,
                "0 0 * * 0",
                "UTC",
                "2026-11-27T00:00:00Z",
                &["2026-11-29T00:00:00Z", "2026-12-06T00:00:00Z"],
            ),
            // L: last day of the month.
            (
                Dialect::Quartz,
                "0 9 L * ?",
                "UTC",
                "2026-02-01T00:00:00Z",
                &["2026-02-28T09:00:00Z", "2026-03-31T09:00:00Z"],
            ),
            // W: the weekday nearest the 15th (2026-08-15 is a Saturday → Friday 14th;
            // 2026-11-15 is a Sunday → Monday 16th).
            (
                Dialect::Quartz,
                "0 9 15W * ?",
                "UTC",
                "2026-08-01T00:00:00Z",
                &["2026-08-14T09:00:00Z", "2026-09-15T09:00:00Z"],
            ),
            (
                Dialect::Quartz,
                "0 9 15W 11 ?",
                "UTC",
                "2026-11-01T00:00:00Z",
                &["2026-11-16T09:00:00Z", "2027-11-15T09:00:00Z"],
            ),
            // #: the third Friday (Quartz 6) of the month.
            (
                Dialect::Quartz,
                "0 8 ? * 6#3",
                "UTC",
                "2026-11-01T00:00:00Z",
                &["2026-11-20T08:00:00Z", "2026-12-18T08:00:00Z"],
            ),
            // 6L: the last Friday of the month.
            (
                Dialect::Quartz,
                "0 8 ? * 6L",
                "UTC",
                "2026-11-01T00:00:00Z",
                &["2026-11-27T08:00:00Z", "2026-12-25T08:00:00Z"],
            ),
            // A zone: 06:00 in Berlin is 05:00 UTC in winter, 04:00 UTC in summer.
            (
                Dialect::Posix,
                "0 6 * * *",
                "Europe/Berlin",
                "2026-03-27T12:00:00Z",
                &[
                    "2026-03-28T05:00:00Z",
                    "2026-03-29T04:00:00Z",
                    "2026-03-30T04:00:00Z",
                ],
            ),
            // Spring forward (Berlin, 2026-03-29 02:00 → 03:00): 02:30 does not
            // exist that day; the run happens once, right after the gap (03:00 CEST).
            (
                Dialect::Posix,
                "30 2 * * *",
                "Europe/Berlin",
                "2026-03-28T12:00:00Z",
                &["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
            ),
            // Fall back (2026-10-25 03:00 CEST → 02:00 CET): 02:30 happens twice;
            // a daily job runs once, at the first.
            (
                Dialect::Posix,
                "30 2 * * *",
                "Europe/Berlin",
                "2026-10-24T12:00:00Z",
                &["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
            ),
            // An hourly job keeps its real hour through the fall-back: 02:30 CEST
            // and 02:30 CET are an hour apart and both run.
            (
                Dialect::Quartz,
                "30 * * * ?",
                "Europe/Berlin",
                "2026-10-24T23:45:00Z",
                &[
                    "2026-10-25T00:30:00Z",
                    "2026-10-25T01:30:00Z",
                    "2026-10-25T02:30:00Z",
                ],
            ),
        ];
        for (dialect, expr, tz, after, expected) in table {
            let tz = parse_tz(tz).unwrap();
            let schedule = match dialect {
                Dialect::Posix => Schedule::posix(expr, tz),
                Dialect::Quartz => Schedule::quartz(expr, tz),
            }
            .unwrap_or_else(|e| panic!("{expr}: {e}"));
            let mut t = utc(after);
            let mut got = Vec::new();
            for _ in 0..expected.len() {
                t = schedule.next_after(t).expect("a next fire");
                got.push(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            }
            assert_eq!(&got, expected, "{dialect:?} {expr:?} in {tz} after {after}");
        }
    }

    #[test]
    fn bad_expressions_and_zones_are_refused_with_reasons() {
        let tz = parse_tz("UTC").unwrap();
        for bad in [
            "* * * *",
            "61 * * * *",
            "0 6 * * 1-5 2027",
            "0 0 31 2 *",
            "x * * * *",
        ] {
            let e = Schedule::posix(bad, tz).unwrap_err();
            assert!(e.0.contains(bad), "{bad}: {e}");
        }
        // `?` is Quartz, not POSIX.
        let e = Schedule::posix("0 6 ? * 1", tz).unwrap_err();
        assert!(e.0.contains("Quartz"), "{e}");
        let e = parse_tz("Mars/Olympus").unwrap_err();
        assert!(e.0.contains("Mars/Olympus"), "{e}");
    }

    #[test]
    fn posix_weekday_zero_is_rewritten_for_quartz_only_when_named() {
        assert_eq!(posix_weekdays_to_quartz("0").as_deref(), Some("1"));
        assert_eq!(posix_weekdays_to_quartz("0-6").as_deref(), Some("1-7"));
        assert_eq!(posix_weekdays_to_quartz("0,3/2").as_deref(), Some("1,4/2"));
        // POSIX 7 is Sunday too: a range up to it ends on Saturday and names Sunday.
        assert_eq!(posix_weekdays_to_quartz("0-7").as_deref(), Some("1-7"));
        assert_eq!(
            posix_weekdays_to_quartz("0,5-7").as_deref(),
            Some("1,6-7,1")
        );
        assert_eq!(posix_weekdays_to_quartz("0-7/2").as_deref(), Some("1-7/2"));
        assert_eq!(
            posix_weekdays_to_quartz("0,1-7/3").as_deref(),
            Some("1,2-7/3,1")
        );
        assert_eq!(
            posix_weekdays_to_quartz("0,2-7/2").as_deref(),
            Some("1,3-7/2")
        );
        assert_eq!(posix_weekdays_to_quartz("1-5"), None);
        assert_eq!(posix_weekdays_to_quartz("6#3"), None);
        assert_eq!(posix_weekdays_to_quartz("?"), None);
    }

    #[test]
    fn fields_round_trip_as_arcgis_json() {
        let f = CronFields::split("*/1 * * * ?").unwrap();
        assert_eq!(
            f.to_json(),
            json!({"minute":"*/1","hour":"*","dayOfMonth":"*","month":"*","dayOfWeek":"?"})
        );
        assert_eq!(f.expression(), "*/1 * * * ?");
    }
}
