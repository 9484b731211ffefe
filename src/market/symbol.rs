use anyhow::{bail, Result};
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
    pub const ALL: [AssetClass; 2] = [AssetClass::Equity, AssetClass::Crypto];

    pub fn as_str(self) -> &'static str {
        match self {
            AssetClass::Equity => "equity",
            AssetClass::Crypto => "crypto",
        }
    }

    pub fn from_name(s: &str) -> Option<AssetClass> {
        AssetClass::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Longest symbol name accepted, in UTF-8 bytes (real tickers and pairs are under 16); escaped,
/// it still fits a file name.
pub const MAX_NAME_BYTES: usize = 64;

/// Checks a user-given symbol name and returns it upper-cased. Refuses what cannot name a
/// series: empty or blank names, `.` and `..`, control characters, surrounding whitespace and
/// names longer than [`MAX_NAME_BYTES`].
pub fn validate_name(name: &str) -> Result<String> {
    if name.trim().is_empty() {
        bail!("empty symbol name: give a ticker such as SPY or a pair such as BTC/USD");
    }
    if name == "." || name == ".." {
        bail!("{name:?} is not a symbol name");
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        bail!("symbol name {name:?} contains the control character {c:?}");
    }
    if name.trim() != name {
        bail!("symbol name {name:?} has leading or trailing whitespace");
    }
    if name.len() > MAX_NAME_BYTES {
        bail!(
            "symbol name {:?}… is {} bytes long; at most {MAX_NAME_BYTES} are accepted",
            name.chars().take(16).collect::<String>(),
            name.len()
        );
    }
    Ok(name.to_ascii_uppercase())
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub struct Symbol {
    pub name: String,
    pub class: AssetClass,
}

impl Symbol {
    /// A validated symbol (see [`validate_name`]); the name is upper-cased.
    pub fn new(name: &str, class: AssetClass) -> Result<Self> {
        Ok(Symbol {
            name: validate_name(name)?,
            class,
        })
    }

    /// A user's symbol, validated, with the class read from its spelling as [`Symbol::parse`]
    /// does.
    pub fn from_user(name: &str) -> Result<Self> {
        Symbol::new(name, Symbol::parse(name).class)
    }

    /// An equity from a trusted name (built-in or already validated).
    pub fn equity(name: &str) -> Self {
        Symbol {
            name: name.to_ascii_uppercase(),
            class: AssetClass::Equity,
        }
    }

    /// A crypto pair from a trusted name (built-in or already validated).
    pub fn crypto(name: &str) -> Self {
        Symbol {
            name: name.to_ascii_uppercase(),
            class: AssetClass::Crypto,
        }
    }

    /// Crypto pairs are written with a slash (`BTC/USD`), the way Alpaca names them. Does not
    /// validate: use [`Symbol::from_user`] for names from outside.
    pub fn parse(name: &str) -> Self {
        if name.contains('/') {
            Symbol::crypto(name)
        } else {
            Symbol::equity(name)
        }
    }

    /// The file name of the symbol's series, injective and readable: `A–Z`, `0–9`, `.` and `-`
    /// stay as they are, every other byte of the UTF-8 name (the escape character `%` included,
    /// and a leading `.`, so that no series file is hidden) becomes `%XX` in upper-case hex
    /// (`BTC/USD` → `BTC%2FUSD`). Distinct names always give distinct stems; the class is kept
    /// apart by the store's directories.
    pub fn file_stem(&self) -> String {
        let mut out = String::with_capacity(self.name.len());
        for (i, b) in self.name.bytes().enumerate() {
            if is_kept(b) && !(i == 0 && b == b'.') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    /// The symbol whose [`Symbol::file_stem`] is `stem`, if `stem` is one (only the canonical
    /// spelling is accepted, so the mapping is a bijection).
    pub fn from_file_stem(stem: &str, class: AssetClass) -> Option<Symbol> {
        let b = stem.as_bytes();
        let mut bytes = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                if hex.bytes().any(|c| c.is_ascii_lowercase()) {
                    return None;
                }
                bytes.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            } else {
                bytes.push(b[i]);
                i += 1;
            }
        }
        let sym = Symbol::new(&String::from_utf8(bytes).ok()?, class).ok()?;
        (sym.file_stem() == stem).then_some(sym)
    }

    /// The file stem an earlier release used (every character but `A–Z0–9.` became `-`), for
    /// migrating old stores. Not injective: that is why it was replaced.
    pub fn legacy_file_stem(&self) -> String {
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

fn is_kept(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'.' || b == b'-'
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_are_readable_and_injective() {
        let stem = |n: &str, c| Symbol::new(n, c).unwrap().file_stem();
        assert_eq!(stem("BTC/USD", AssetClass::Crypto), "BTC%2FUSD");
        assert_eq!(stem("BTC-USD", AssetClass::Equity), "BTC-USD");
        assert_eq!(stem("brk.b", AssetClass::Equity), "BRK.B");
        assert_eq!(stem("A%B", AssetClass::Equity), "A%25B");
        assert_eq!(stem(".X", AssetClass::Equity), "%2EX");
        // Two non-ASCII names that the old rule mapped to the same `--`.
        assert_eq!(stem("ÄÖ", AssetClass::Equity), "%C3%84%C3%96");
        assert_ne!(
            stem("ÄÖ", AssetClass::Equity),
            stem("ÜÉ", AssetClass::Equity)
        );
        let names = [
            "BTC/USD",
            "BTC-USD",
            "BTC%2FUSD",
            "A%25B",
            "A%B",
            "ÄÖ",
            "ÜÉ",
            ".X",
            "%2EX",
            "X.",
            "A B",
            "A_B",
            "A+B",
            "日本",
        ];
        let mut seen = std::collections::BTreeSet::new();
        for n in names {
            let s = Symbol::new(n, AssetClass::Equity).unwrap();
            let st = s.file_stem();
            assert!(seen.insert(st.clone()), "{n} collides as {st}");
            assert!(
                st.bytes().all(|b| is_kept(b) || b == b'%') && !st.starts_with('.'),
                "{st}"
            );
            assert_eq!(Symbol::from_file_stem(&st, s.class), Some(s), "{st}");
        }
        // Non-canonical spellings decode to nothing, so no two files claim one symbol.
        for bad in [
            "BTC%2fUSD",
            "%41",
            "A%",
            "A%G1",
            "",
            "%2E",
            "%2E%2E",
            "A%00",
        ] {
            assert_eq!(
                Symbol::from_file_stem(bad, AssetClass::Equity),
                None,
                "{bad}"
            );
        }
        assert_eq!(
            Symbol::crypto("BTC/USD").legacy_file_stem(),
            Symbol::equity("BTC-USD").legacy_file_stem()
        );
    }

    #[test]
    fn bad_names_are_refused_with_a_reason() {
        for (name, why) in [
            ("", "empty"),
            ("   ", "empty"),
            (".", "not a symbol"),
            ("..", "not a symbol"),
            ("A\u{0}B", "control"),
            ("A\nB", "control"),
            (" SPY", "whitespace"),
        ] {
            let e = format!("{:#}", Symbol::from_user(name).unwrap_err());
            assert!(e.contains(why), "{name:?}: {e}");
        }
        let long = "A".repeat(MAX_NAME_BYTES + 1);
        assert!(format!("{:#}", Symbol::from_user(&long).unwrap_err()).contains("at most 64"));
        assert!(Symbol::from_user(&"A".repeat(MAX_NAME_BYTES)).is_ok());
        let s = Symbol::from_user("btc/usd").unwrap();
        assert_eq!((s.name.as_str(), s.class), ("BTC/USD", AssetClass::Crypto));
    }
}
