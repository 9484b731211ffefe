//! Event days (FOMC decisions, jobs reports, CPI, GDP, retail sales) from the table embedded from
//! `assets/events.csv`, extended by `<QUANTDECK_HOME>/events.csv` when that file exists (same
//! format; a row whose kind starts with `-` removes an embedded row). A bad user row is skipped
//! with a warning naming the file and line. The table is passed to the feature code explicitly
//! (never read from a global), and its hash is recorded in the `FeatureSpec` of every model.

use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

const EMBEDDED: &str = include_str!("../../assets/events.csv");

pub const FOMC: u8 = 1;
pub const NFP: u8 = 2;
pub const CPI: u8 = 4;
pub const GDP: u8 = 8;
pub const RETAIL: u8 = 16;

/// Event flags by exchange-local date.
#[derive(Debug, Clone, Default)]
pub struct EventTable {
    days: HashMap<NaiveDate, u8>,
    /// Where the table came from, for `quantdeck features --spec`.
    pub sources: Vec<String>,
    pub warnings: Vec<String>,
}

fn kind_flag(kind: &str) -> Option<u8> {
    Some(match kind.trim().to_ascii_uppercase().as_str() {
        "FOMC" => FOMC,
        "NFP" | "JOBS" => NFP,
        "CPI" => CPI,
        "GDP" => GDP,
        "RETAIL" => RETAIL,
        _ => return None,
    })
}

impl EventTable {
    /// Parses `date,kind[,note]` rows; `#` lines and the header are skipped.
    pub fn add_csv(&mut self, text: &str, origin: &str) {
        let mut rows = 0;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with("date,") {
                continue;
            }
            let mut f = line.split(',');
            let (date, kind) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
            let (remove, kind) = match kind.trim().strip_prefix('-') {
                Some(k) => (true, k),
                None => (false, kind),
            };
            let parsed = NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d").ok();
            match (parsed, kind_flag(kind)) {
                (Some(d), Some(flag)) => {
                    let e = self.days.entry(d).or_insert(0);
                    if remove {
                        *e &= !flag;
                    } else {
                        *e |= flag;
                    }
                    rows += 1;
                }
                _ => self.warnings.push(format!(
                    "{origin}:{}: expected `YYYY-MM-DD,KIND` with KIND one of FOMC, NFP, CPI, GDP, RETAIL; got {:?} (the line is not used)",
                    i + 1,
                    crate::jsonl::clip(line, 80)
                )),
            }
        }
        self.sources.push(format!("{origin} ({rows} rows)"));
    }

    pub fn embedded() -> Self {
        let mut t = EventTable::default();
        t.add_csv(EMBEDDED, "assets/events.csv (built in)");
        t
    }

    /// The built-in table plus the user's file, if present.
    pub fn with_user_file(path: &Path) -> Self {
        let mut t = Self::embedded();
        match std::fs::read_to_string(path) {
            Ok(text) => t.add_csv(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Bytes that are not text, or no permission: the user's days are missing, say so.
            Err(e) => t.warnings.push(format!(
                "{}: cannot be read ({e}): none of its event days are used",
                path.display()
            )),
        }
        t
    }

    /// The table of a quantdeck home: built in, plus `<home>/events.csv` when present.
    pub fn load(home: &Path) -> Self {
        let t = Self::with_user_file(&user_file(home));
        for w in &t.warnings {
            tracing::warn!("event table: {w}");
        }
        t
    }

    pub fn flags(&self, date: NaiveDate) -> u8 {
        self.days.get(&date).copied().unwrap_or(0)
    }

    /// SHA-256 of the table's content (days with their flags, in date order): two tables that
    /// mark the same days hash the same, whatever files they came from.
    pub fn sha256(&self) -> String {
        let sorted: BTreeMap<&NaiveDate, &u8> =
            self.days.iter().filter(|(_, f)| **f != 0).collect();
        let mut h = Sha256::new();
        for (d, f) in sorted {
            h.update(d.to_string().as_bytes());
            h.update([*f]);
        }
        format!("{:x}", h.finalize())
    }
}

/// The user's additions to the event table in a quantdeck home.
pub fn user_file(home: &Path) -> PathBuf {
    home.join("events.csv")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_has_known_days_and_user_rows_extend_it() {
        let t = EventTable::embedded();
        assert!(t.warnings.is_empty(), "{:?}", t.warnings);
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        assert_eq!(t.flags(d(2024, 3, 20)), FOMC);
        let before = t.sha256();
        assert_eq!(before, EventTable::embedded().sha256());
        assert_eq!(t.flags(d(2024, 3, 8)), NFP);
        assert_eq!(t.flags(d(2024, 3, 11)), 0);
        let mut t = t;
        t.add_csv(
            "date,kind,note\n2024-03-12,CPI,Feb CPI\n2024-03-20,-FOMC\nbad,row\n",
            "user.csv",
        );
        assert_eq!(t.flags(d(2024, 3, 12)), CPI);
        assert_eq!(t.flags(d(2024, 3, 20)), 0);
        assert_eq!(t.warnings.len(), 1);
        assert!(t.warnings[0].starts_with("user.csv:4:"), "{:?}", t.warnings);
        assert_ne!(t.sha256(), before, "an edited table must hash differently");
    }
}
