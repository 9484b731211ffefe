use super::AssetClass;
use anyhow::{bail, Result};
use chrono::Duration;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A bar length, spelled the way Alpaca spells it (`15Min`, `1Hour`, `1Day`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timeframe {
    Minute(u32),
    Hour(u32),
    Day,
}

impl Timeframe {
    pub fn minutes(self) -> i64 {
        match self {
            Timeframe::Minute(n) => n as i64,
            Timeframe::Hour(n) => 60 * n as i64,
            Timeframe::Day => 24 * 60,
        }
    }

    pub fn duration(self) -> Duration {
        Duration::minutes(self.minutes())
    }

    /// Bars in one regular NYSE session (6.5 h) or one crypto day (24 h).
    pub fn bars_per_day(self, class: AssetClass) -> f64 {
        match (self, class) {
            (Timeframe::Day, _) => 1.0,
            (_, AssetClass::Equity) => (390.0 / self.minutes() as f64).ceil(),
            (_, AssetClass::Crypto) => 1440.0 / self.minutes() as f64,
        }
    }

    /// Used to annualise Sharpe ratios: 252 sessions for equities, 365 days for crypto.
    pub fn bars_per_year(self, class: AssetClass) -> f64 {
        let days = match class {
            AssetClass::Equity => 252.0,
            AssetClass::Crypto => 365.0,
        };
        days * self.bars_per_day(class)
    }
}

impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timeframe::Minute(n) => write!(f, "{n}Min"),
            Timeframe::Hour(n) => write!(f, "{n}Hour"),
            Timeframe::Day => f.write_str("1Day"),
        }
    }
}

impl FromStr for Timeframe {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
        let unit = &s[digits.len()..];
        let n: u32 = digits.parse().unwrap_or(0);
        let tf = match unit {
            "Min" | "T" if (1..=59).contains(&n) => Timeframe::Minute(n),
            "Hour" | "H" if (1..=23).contains(&n) => Timeframe::Hour(n),
            "Day" | "D" if n == 1 => Timeframe::Day,
            _ => bail!(
                "unknown timeframe {s:?}: use [1-59]Min, [1-23]Hour or 1Day (case-sensitive, e.g. 15Min)"
            ),
        };
        Ok(tf)
    }
}

impl Serialize for Timeframe {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Timeframe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_alpaca_spelling() {
        for s in ["15Min", "1Hour", "4Hour", "1Day", "5Min"] {
            assert_eq!(s.parse::<Timeframe>().unwrap().to_string(), s);
        }
        assert!("15min".parse::<Timeframe>().is_err());
        assert!("0Min".parse::<Timeframe>().is_err());
        assert!("2Day".parse::<Timeframe>().is_err());
    }

    #[test]
    fn bars_per_day_matches_seed_table() {
        let eq = AssetClass::Equity;
        assert_eq!(Timeframe::Minute(15).bars_per_day(eq), 26.0);
        assert_eq!(Timeframe::Minute(30).bars_per_day(eq), 13.0);
        assert_eq!(Timeframe::Hour(1).bars_per_day(eq), 7.0);
        assert_eq!(Timeframe::Hour(4).bars_per_day(eq), 2.0);
        assert_eq!(Timeframe::Day.bars_per_day(eq), 1.0);
        assert_eq!(Timeframe::Minute(15).bars_per_day(AssetClass::Crypto), 96.0);
    }
}
