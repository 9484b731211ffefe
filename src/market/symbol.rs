use serde::{Deserialize, Serialize};
use std::fmt;

/// Equities trade NYSE sessions; crypto trades 24/7 and cannot be shorted here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum AssetClass {
    Equity,
    Crypto,
}

impl AssetClass {
    pub fn as_str(self) -> &'static str {
        match self {
            AssetClass::Equity => "equity",
            AssetClass::Crypto => "crypto",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub struct Symbol {
    pub name: String,
    pub class: AssetClass,
}

impl Symbol {
    pub fn equity(name: &str) -> Self {
        Symbol {
            name: name.to_ascii_uppercase(),
            class: AssetClass::Equity,
        }
    }

    pub fn crypto(name: &str) -> Self {
        Symbol {
            name: name.to_ascii_uppercase(),
            class: AssetClass::Crypto,
        }
    }

    /// Crypto pairs are written with a slash (`BTC/USD`), the way Alpaca names them.
    pub fn parse(name: &str) -> Self {
        if name.contains('/') {
            Symbol::crypto(name)
        } else {
            Symbol::equity(name)
        }
    }

    /// A name safe for file paths (`BTC/USD` → `BTC-USD`).
    pub fn file_stem(&self) -> String {
        self.name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}
