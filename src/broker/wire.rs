//! Serde helpers for Alpaca's JSON: amounts arrive as strings (`"100.25"`), sometimes as bare
//! numbers (`"qty": 1` in older order replies), sometimes as `null` or `""`; all decode into exact
//! decimals here, at the boundary, so no float ever carries a price or a quantity.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use std::str::FromStr;

#[derive(Deserialize)]
#[serde(untagged)]
enum Amount {
    Text(String),
    Number(serde_json::Number),
}

/// Parses `"12.5"`, `"-3"`, `"1e-5"` (scientific notation, seen from some float encoders).
pub fn parse_decimal(s: &str) -> Result<Decimal, String> {
    let t = s.trim();
    Decimal::from_str(t)
        .or_else(|_| Decimal::from_scientific(t))
        .map_err(|_| format!("not a decimal amount: {s:?}"))
}

fn amount_to_decimal(a: Amount) -> Result<Option<Decimal>, String> {
    match a {
        Amount::Text(s) if s.trim().is_empty() => Ok(None),
        Amount::Text(s) => parse_decimal(&s).map(Some),
        // serde_json prints a float's shortest round-trip form, so `0.1` stays `0.1`.
        Amount::Number(n) => parse_decimal(&n.to_string()).map(Some),
    }
}

/// A required amount (string or number).
pub fn decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    amount_to_decimal(Amount::deserialize(d)?)
        .map_err(serde::de::Error::custom)?
        .ok_or_else(|| serde::de::Error::custom("empty amount"))
}

/// An optional amount: missing, `null` and `""` are `None`.
pub fn opt_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    match Option::<Amount>::deserialize(d)? {
        None => Ok(None),
        Some(a) => amount_to_decimal(a).map_err(serde::de::Error::custom),
    }
}

/// An amount that reads as zero when missing, `null` or `""`.
pub fn decimal_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    Ok(opt_decimal(d)?.unwrap_or(Decimal::ZERO))
}

/// `null` (or missing, with `#[serde(default)]`) becomes the type's default.
pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Defines an **open** string enum: the listed values, plus `Other(String)` for anything this
/// version does not know, kept as sent (Alpaca adds statuses and events over time; an unknown one
/// must never fail a whole order list).
macro_rules! open_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $var:ident = $s:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $var,)+
            /// A value this version does not know, kept as Alpaca sent it.
            Other(String),
        }

        impl $name {
            /// The wire spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$var => $s,)+
                    $name::Other(s) => s.as_str(),
                }
            }

            /// From the wire spelling; unknown values become `Other`.
            pub fn parse(s: &str) -> Self {
                match s {
                    $($s => $name::$var,)+
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                Ok($name::parse(&s))
            }
        }
    };
}

pub(crate) use open_enum;

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[derive(Deserialize)]
    struct Row {
        #[serde(deserialize_with = "decimal")]
        a: Decimal,
        #[serde(default, deserialize_with = "opt_decimal")]
        b: Option<Decimal>,
    }

    fn row(json: &str) -> Result<Row, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn amounts_decode_exactly_from_strings_and_numbers() {
        let r = row(r#"{"a":"100.10","b":"-0.000000001"}"#).unwrap();
        assert_eq!(r.a, dec("100.10"));
        assert_eq!(r.b, Some(dec("-0.000000001")));
        // A bare float keeps its decimal spelling (no 0.1 → 0.1000000000000000055…).
        let r = row(r#"{"a":0.1,"b":1}"#).unwrap();
        assert_eq!(r.a, dec("0.1"));
        assert_eq!(r.b, Some(dec("1")));
        assert_eq!(row(r#"{"a":"1e-5"}"#).unwrap().a, dec("0.00001"));
        assert_eq!(row(r#"{"a":"7","b":null}"#).unwrap().b, None);
        assert_eq!(row(r#"{"a":"7","b":""}"#).unwrap().b, None);
        assert_eq!(row(r#"{"a":"7"}"#).unwrap().b, None);
    }

    #[test]
    fn bad_amounts_are_clear_errors() {
        let e = row(r#"{"a":"12,5"}"#).err().unwrap().to_string();
        assert!(e.contains("not a decimal amount"), "{e}");
        assert!(row(r#"{"a":""}"#).is_err());
        assert!(row(r#"{"a":null}"#).is_err());
        assert!(row(r#"{"a":true}"#).is_err());
        assert!(parse_decimal("abc").is_err());
    }
}
