//! Importing OHLCV from CSV or parquet — the one reader of outside bar files (`import`,
//! `features --csv`): column names as users write them (`Date`, `timestamp`, `Open`, `o`,
//! `Volume`, …), timestamps as RFC 3339, epoch numbers (seconds to nanoseconds, the unit read from the
//! magnitude: see `epoch`), or naive local times, all within the calendar.
//! Every validation error names the row.
//!
//! **One rule for naive timestamps**, in both formats: a timestamp without an offset or zone (a
//! CSV `2024-03-12 09:30:00`, a parquet `Datetime` column without a time zone, a bare date) is a
//! wall-clock time in the zone given with `--tz`; by default New York time for equities (the
//! exchange's clock, in which stock data is usually written) and UTC for crypto. Timestamps with
//! an offset or zone (RFC 3339, a zoned parquet column) and epoch numbers are absolute and ignore
//! the zone.

use crate::market::{AssetClass, Bar};
use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use polars::prelude::*;
use std::path::Path;

const TS_NAMES: &[&str] = &[
    "timestamp",
    "ts",
    "t",
    "time",
    "datetime",
    "date_time",
    "date",
    "open_time",
    "bar_time",
];
const COLS: [(&str, &[&str]); 5] = [
    ("open", &["open", "o", "open_price"]),
    ("high", &["high", "h", "high_price"]),
    ("low", &["low", "l", "low_price"]),
    (
        "close",
        &[
            "close",
            "c",
            "close_price",
            "last",
            "adj_close",
            "adj close",
        ],
    ),
    ("volume", &["volume", "vol", "v", "qty"]),
];

fn norm(name: &str) -> String {
    name.trim().trim_matches('"').to_ascii_lowercase()
}

/// Which input column plays which role; the timestamp may be split in a date and a time column.
struct Layout {
    ts: usize,
    time: Option<usize>,
    cols: [Option<usize>; 5],
}

fn layout(headers: &[String]) -> Result<Layout> {
    let find = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| headers.iter().position(|h| norm(h) == *n))
    };
    let date = headers.iter().position(|h| norm(h) == "date");
    let time = headers.iter().position(|h| norm(h) == "time");
    let (ts, time) = match (date, time) {
        (Some(d), Some(t)) => (d, Some(t)),
        _ => (
            find(TS_NAMES).ok_or_else(|| {
                anyhow!(
                    "no timestamp column (looked for {}); columns are: {}",
                    TS_NAMES.join(", "),
                    headers.join(", ")
                )
            })?,
            None,
        ),
    };
    let mut cols = [None; 5];
    for (i, (role, names)) in COLS.iter().enumerate() {
        cols[i] = find(names);
        if cols[i].is_none() && *role != "volume" {
            bail!(
                "no `{role}` column (looked for {}); columns are: {}",
                names.join(", "),
                headers.join(", ")
            );
        }
    }
    Ok(Layout { ts, time, cols })
}

/// The zone of naive timestamps when none is given: New York for equities, UTC for crypto.
pub fn default_tz(class: AssetClass) -> Tz {
    match class {
        AssetClass::Equity => chrono_tz::America::New_York,
        AssetClass::Crypto => chrono_tz::UTC,
    }
}

/// The zone named by `--tz`, or [`default_tz`] of `class`.
pub fn tz_for(name: Option<&str>, class: AssetClass) -> Result<Tz> {
    match name {
        None => Ok(default_tz(class)),
        Some(n) => n.parse().map_err(|_| {
            anyhow!("unknown time zone {n:?} (use an IANA name such as America/New_York or UTC)")
        }),
    }
}

/// Parses one timestamp; naive values are local times in `tz`.
pub fn parse_timestamp(s: &str, tz: Tz) -> Result<DateTime<Utc>> {
    let s = s.trim().trim_matches('"');
    if let Ok(n) = s.parse::<i64>() {
        // An epoch number's unit comes from its magnitude (`epoch`); eight digits that are not
        // one may be a YYYYMMDD date, read below.
        if super::epoch::unit_of(n).is_some() || s.len() != 8 {
            return super::epoch::from_epoch(n).map(|(t, _)| t);
        }
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%:z",
        "%Y-%m-%d %H:%M:%S%z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Ok(t.with_timezone(&Utc));
        }
    }
    let naive = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%Y%m%d %H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| {
            ["%Y-%m-%d", "%m/%d/%Y", "%Y%m%d"]
                .iter()
                .find_map(|f| NaiveDate::parse_from_str(s, f).ok())
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .ok_or_else(|| anyhow!("{s:?} is not a timestamp I know (RFC 3339, YYYY-MM-DD HH:MM[:SS], MM/DD/YYYY HH:MM, YYYY-MM-DD, epoch s/ms/µs/ns)"))?;
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| anyhow!("{s:?} does not exist in {tz} (a daylight-saving gap)"))
}

fn number(s: &str, what: &str) -> Result<f64> {
    let v: f64 = s
        .trim()
        .trim_matches('"')
        .parse()
        .map_err(|_| anyhow!("{what} {s:?} is not a number"))?;
    if !v.is_finite() {
        bail!("{what} is {v}");
    }
    Ok(v)
}

/// Checks a bar's OHLCV; the message says which value is wrong.
pub fn validate_bar(b: &Bar) -> Result<()> {
    for (name, v) in [
        ("open", b.open),
        ("high", b.high),
        ("low", b.low),
        ("close", b.close),
    ] {
        if v.is_nan() || v <= 0.0 {
            bail!("{name} must be positive, got {v}");
        }
    }
    if b.high < b.open.max(b.close) {
        bail!(
            "high {} is below open/close ({}/{})",
            b.high,
            b.open,
            b.close
        );
    }
    if b.low > b.open.min(b.close) {
        bail!("low {} is above open/close ({}/{})", b.low, b.open, b.close);
    }
    if b.volume < 0.0 {
        bail!("volume {} is negative", b.volume);
    }
    Ok(())
}

/// Reads bars from a CSV or parquet file (by extension), sorted by time. Duplicated timestamps
/// and invalid rows are errors naming the rows.
pub fn read_file(path: &Path, tz: Tz) -> Result<Vec<Bar>> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let rows = match ext.as_str() {
        "parquet" | "pq" => read_parquet_rows(path)?,
        _ => read_csv_rows(path)?,
    };
    let (headers, rows) = rows;
    let lay = layout(&headers).with_context(|| format!("{}", path.display()))?;
    let mut out: Vec<(usize, Bar)> = Vec::with_capacity(rows.len());
    let now = chrono::Utc::now();
    for (line, rec) in rows {
        let get = |i: usize| rec.get(i).map(String::as_str).unwrap_or("");
        let parse = || -> Result<Bar> {
            let ts_text = match lay.time {
                Some(t) => format!("{} {}", get(lay.ts), get(t)),
                None => get(lay.ts).to_string(),
            };
            let v = |k: usize| lay.cols[k].map(get).unwrap_or("");
            let ts = parse_timestamp(&ts_text, tz)?;
            super::epoch::check_calendar(ts, now)?;
            let bar = Bar {
                ts,
                open: number(v(0), "open")?,
                high: number(v(1), "high")?,
                low: number(v(2), "low")?,
                close: number(v(3), "close")?,
                volume: if v(4).trim().is_empty() {
                    0.0
                } else {
                    number(v(4), "volume")?
                },
            };
            validate_bar(&bar)?;
            Ok(bar)
        };
        let bar = parse().with_context(|| format!("{} row {line}", path.display()))?;
        out.push((line, bar));
    }
    if out.is_empty() {
        bail!("{} has no data rows", path.display());
    }
    out.sort_by_key(|(_, b)| b.ts);
    if let Some(w) = out.windows(2).find(|w| w[0].1.ts == w[1].1.ts) {
        bail!(
            "{}: rows {} and {} have the same timestamp {}",
            path.display(),
            w[0].0.min(w[1].0),
            w[0].0.max(w[1].0),
            w[0].1.ts
        );
    }
    Ok(out.into_iter().map(|(_, b)| b).collect())
}

type Rows = (Vec<String>, Vec<(usize, Vec<String>)>);

/// The longest line a bars file may have: an OHLCV row is well under a kilobyte, so a longer one
/// means the file is not a bars file (`/dev/zero` or a binary file would otherwise fill memory).
const MAX_LINE_BYTES: usize = 1 << 20;

/// Reads through, refusing a line longer than [`MAX_LINE_BYTES`] and more than `cap` bytes in all
/// (a pipe or device has no size to check before reading).
struct Capped<R> {
    inner: R,
    line: usize,
    total: u64,
    cap: u64,
}

impl<R: std::io::Read> std::io::Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.line = match buf[..n].iter().rposition(|b| *b == b'\n') {
            Some(i) => n - i - 1,
            None => self.line + n,
        };
        self.total += n as u64;
        let refuse = |m: String| Err(std::io::Error::new(std::io::ErrorKind::InvalidData, m));
        if self.line > MAX_LINE_BYTES {
            return refuse(format!(
                "a line longer than {MAX_LINE_BYTES} bytes: this is not a bars file"
            ));
        }
        if self.total > self.cap {
            return refuse(too_large(self.cap));
        }
        Ok(n)
    }
}

/// The most bytes of CSV imported at once: its rows are held as text, several times the file's
/// size (about 15 times, with the vectors' growth), so a 32nd of the memory available.
fn csv_cap() -> u64 {
    super::budget::mem_available().unwrap_or(4 << 30) / 32
}

fn too_large(cap: u64) -> String {
    format!(
        "more than {cap} bytes: too large to import at once with the memory available (split the file)"
    )
}

fn read_csv_rows(path: &Path) -> Result<Rows> {
    let cap = csv_cap();
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    if file.metadata().is_ok_and(|m| m.len() > cap) {
        bail!("{}: {}", path.display(), too_large(cap));
    }
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(Capped {
            inner: file,
            line: 0,
            total: 0,
            cap,
        });
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| anyhow!("{}: no header row ({e})", path.display()))?
        .iter()
        .map(String::from)
        .collect();
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let line = rec.position().map(|p| p.line() as usize).unwrap_or(0);
        rows.push((line, rec.iter().map(String::from).collect()));
    }
    Ok((headers, rows))
}

fn read_parquet_rows(path: &Path) -> Result<Rows> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let df = ParquetReader::new(file)
        .finish()
        .map_err(|e| anyhow!("{} is not a readable parquet file: {e}", path.display()))?;
    let headers: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut cols: Vec<Vec<String>> = Vec::new();
    for c in df.columns() {
        let as_text: Vec<String> = match c.dtype() {
            DataType::Datetime(unit, zone) => {
                let (unit, zoned) = (*unit, zone.is_some());
                let c = c.cast(&DataType::Datetime(unit, None))?;
                let phys = c.datetime()?.physical().clone();
                let to_ms = |v: i64| match unit {
                    TimeUnit::Nanoseconds => v.div_euclid(1_000_000),
                    TimeUnit::Microseconds => v.div_euclid(1_000),
                    TimeUnit::Milliseconds => v,
                };
                // A zoned column holds UTC instants; a naive one holds wall-clock times, which
                // are written out naive so that the one rule (`--tz`) applies as for CSV.
                phys.iter()
                    .map(|v| {
                        v.and_then(|v| DateTime::from_timestamp_millis(to_ms(v)))
                            .map(|t| {
                                if zoned {
                                    t.to_rfc3339()
                                } else {
                                    t.naive_utc().format("%Y-%m-%d %H:%M:%S%.f").to_string()
                                }
                            })
                            .unwrap_or_default()
                    })
                    .collect()
            }
            _ => {
                let s = c
                    .cast(&DataType::String)
                    .map_err(|e| anyhow!("column {}: {e}", c.name()))?;
                s.str()?
                    .iter()
                    .map(|v| v.unwrap_or("").to_string())
                    .collect()
            }
        };
        cols.push(as_text);
    }
    let n = df.height();
    let rows = (0..n)
        .map(|i| (i + 1, cols.iter().map(|c| c[i].clone()).collect()))
        .collect();
    Ok((headers, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capped<R: std::io::Read>(inner: R, cap: u64) -> std::io::Result<usize> {
        use std::io::Read;
        let mut sink = Vec::new();
        Capped {
            inner,
            line: 0,
            total: 0,
            cap,
        }
        .read_to_end(&mut sink)
    }

    #[test]
    fn endless_input_is_refused_not_held() {
        use std::io::Read;
        // A line without end (/dev/zero, a binary file).
        let e = capped(std::io::repeat(0), u64::MAX).unwrap_err();
        assert!(e.to_string().contains("not a bars file"), "{e}");
        // Endless short lines (a pipe): the total cap.
        let e = capped(std::io::repeat(b'\n').take(1 << 20), 1000).unwrap_err();
        assert!(e.to_string().contains("more than 1000 bytes"), "{e}");
        assert_eq!(capped(&b"a,b\n1,2\n"[..], 1000).unwrap(), 8);
    }

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn user_shaped_csvs() {
        let dir = tempfile::tempdir().unwrap();
        let ny: Tz = "America/New_York".parse().unwrap();
        let p = write(dir.path(), "a.csv", "Date,Open,High,Low,Close,Volume\n2024-03-12 09:45:00,10,11,9,10.5,100\n2024-03-12 09:30:00,9.5,10.2,9.4,10,200\n");
        let bars = read_file(&p, ny).unwrap();
        assert_eq!(
            bars[0].ts.to_rfc3339(),
            "2024-03-12T13:30:00+00:00",
            "naive times are New York time, sorted"
        );
        assert_eq!(bars[1].volume, 100.0);
        let p = write(
            dir.path(),
            "b.csv",
            "t,o,h,l,c\n1710250200000,1,2,0.5,1.5\n1710251100,1,2,0.5,1.5\n",
        );
        let bars = read_file(&p, chrono_tz::UTC).unwrap();
        assert_eq!(bars.len(), 2);
        assert_eq!(bars[0].volume, 0.0, "missing volume is zero");
        let p = write(
            dir.path(),
            "c.csv",
            "date,time,open,high,low,close,volume\n03/12/2024,10:00,1,2,0.5,1.5,3\n",
        );
        assert_eq!(
            read_file(&p, ny).unwrap()[0].ts.to_rfc3339(),
            "2024-03-12T14:00:00+00:00"
        );
    }

    #[test]
    fn errors_name_the_row() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "bad.csv", "timestamp,open,high,low,close,volume\n2024-03-12T13:30:00Z,10,11,9,10,1\n2024-03-12T13:45:00Z,10,9.5,9,10,1\n");
        let e = format!("{:#}", read_file(&p, chrono_tz::UTC).unwrap_err());
        assert!(e.contains("row 3") && e.contains("high 9.5"), "{e}");
        let p = write(dir.path(), "dup.csv", "timestamp,open,high,low,close\n2024-03-12T13:30:00Z,1,1,1,1\n2024-03-12T13:30:00Z,1,1,1,1\n");
        let e = format!("{:#}", read_file(&p, chrono_tz::UTC).unwrap_err());
        assert!(e.contains("rows 2 and 3"), "{e}");
        let p = write(dir.path(), "cols.csv", "when,open,high,low,close\n");
        let e = format!("{:#}", read_file(&p, chrono_tz::UTC).unwrap_err());
        assert!(
            e.contains("no timestamp column") && e.contains("when"),
            "{e}"
        );
        let p = write(
            dir.path(),
            "ts.csv",
            "timestamp,open,high,low,close\nyesterday,1,1,1,1\n",
        );
        let e = format!("{:#}", read_file(&p, chrono_tz::UTC).unwrap_err());
        assert!(e.contains("row 2") && e.contains("yesterday"), "{e}");
    }
}

#[cfg(test)]
mod naive_time_tests {
    use super::*;

    #[test]
    fn naive_times_mean_the_same_in_csv_and_parquet() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("naive.csv");
        std::fs::write(
            &csv,
            "timestamp,open,high,low,close,volume\n2024-03-12 09:30:00,10,11,9,10.5,100\n2024-03-12 09:45:00,10.5,11,10,10.8,50\n2024-11-04 09:30:00,12,13,11,12.5,70\n",
        )
        .unwrap();
        // The same wall-clock times in a parquet `Datetime[ms]` column without a zone.
        let wall = [
            "2024-03-12 09:30:00",
            "2024-03-12 09:45:00",
            "2024-11-04 09:30:00",
        ]
        .map(|t| {
            NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S")
                .unwrap()
                .and_utc()
                .timestamp_millis()
        });
        let ts = Column::new("timestamp".into(), wall.to_vec())
            .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
            .unwrap();
        let f = |name: &str, v: [f64; 3]| Column::new(name.into(), v.to_vec());
        let mut df = DataFrame::new(
            3,
            vec![
                ts,
                f("open", [10.0, 10.5, 12.0]),
                f("high", [11.0, 11.0, 13.0]),
                f("low", [9.0, 10.0, 11.0]),
                f("close", [10.5, 10.8, 12.5]),
                f("volume", [100.0, 50.0, 70.0]),
            ],
        )
        .unwrap();
        let pq = dir.path().join("naive.parquet");
        ParquetWriter::new(std::fs::File::create(&pq).unwrap())
            .finish(&mut df)
            .unwrap();
        let ny = default_tz(AssetClass::Equity);
        let from_csv = read_file(&csv, ny).unwrap();
        let from_pq = read_file(&pq, ny).unwrap();
        assert_eq!(from_csv, from_pq);
        // New York time: EDT (UTC−4) in March, EST (UTC−5) in November.
        assert_eq!(from_pq[0].ts.to_rfc3339(), "2024-03-12T13:30:00+00:00");
        assert_eq!(from_pq[2].ts.to_rfc3339(), "2024-11-04T14:30:00+00:00");
        // Another zone moves both alike.
        assert_eq!(
            read_file(&csv, chrono_tz::UTC).unwrap(),
            read_file(&pq, chrono_tz::UTC).unwrap()
        );
        assert_eq!(
            read_file(&pq, chrono_tz::UTC).unwrap()[0].ts.to_rfc3339(),
            "2024-03-12T09:30:00+00:00"
        );
    }
}

#[cfg(test)]
mod parquet_tests {
    use super::*;
    use crate::data::Store;
    use crate::market::{Symbol, Timeframe};

    #[test]
    fn parquet_with_a_datetime_column_imports_exactly() {
        // A parquet file as polars writes it (Datetime[ms, UTC] `ts`), e.g. exported elsewhere.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let sym = Symbol::crypto("ABC/USD");
        let t0 = chrono::Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap();
        let bars: Vec<Bar> = (0..50)
            .map(|i| {
                let c = 100.0 + i as f64 * 0.1;
                Bar {
                    ts: t0 + chrono::Duration::minutes(15 * i),
                    open: c,
                    high: c + 0.5,
                    low: c - 0.5,
                    close: c + 0.05,
                    volume: 1.5,
                }
            })
            .collect();
        store
            .write(&sym, Timeframe::Minute(15), &bars, "test")
            .unwrap();
        let back = read_file(
            &store.parquet_path(&sym, Timeframe::Minute(15)),
            chrono_tz::UTC,
        )
        .unwrap();
        assert_eq!(back, bars);
    }
}
