//! What the loader checks of a file before the schema reads it, and how it words errors: the
//! size of the file, tables written as tables (serde would otherwise fill a struct from an array
//! by position: `data = ["alpaca", "1Day"]`), the line a field is set on, and messages clipped
//! so that a huge bad value is never echoed back whole.

use anyhow::{bail, Result};

/// A config file larger than this is refused unread (the documented default is ~10 KB).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// The longest line of an error message; longer ones are cut and their length said.
const MAX_LINE: usize = 200;

/// Every line of `msg` cut to [`MAX_LINE`] characters.
pub fn clip_lines(msg: &str) -> String {
    msg.lines()
        .map(|l| crate::jsonl::clip(l, MAX_LINE))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The 1-based line where `field` (dotted path, e.g. `data.train_split`) is set in `text`.
pub fn locate(text: &str, field: &str) -> Option<usize> {
    let root = toml::de::DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut span = None;
    let keys: Vec<&str> = field.split('.').collect();
    for (i, key) in keys.iter().enumerate() {
        let (k, v) = table.iter().find(|(k, _)| k.get_ref().as_ref() == *key)?;
        span = Some(k.span());
        if i + 1 < keys.len() {
            match v.get_ref() {
                toml::de::DeValue::Table(t) => table = t,
                _ => return None,
            }
        }
    }
    let at = span?.start;
    Some(text[..at.min(text.len())].matches('\n').count() + 1)
}

/// Refuses a value where the schema has a table (`data = [...]`, `ppo = 3`), naming the line.
pub fn check_tables(
    user: &toml::Value,
    schema: &toml::Value,
    label: &str,
    text: &str,
) -> Result<()> {
    walk(user, schema, "", label, text)
}

fn walk(user: &toml::Value, schema: &toml::Value, at: &str, label: &str, text: &str) -> Result<()> {
    let (Some(u), Some(s)) = (user.as_table(), schema.as_table()) else {
        return Ok(());
    };
    for (k, v) in u {
        let Some(expect) = s.get(k) else { continue };
        let path = if at.is_empty() {
            k.clone()
        } else {
            format!("{at}.{k}")
        };
        if expect.is_table() && !v.is_table() {
            let line = locate(text, &path).map_or(String::new(), |l| format!(", line {l}"));
            bail!(
                "invalid config in {label}{line}: {path} must be a table (a [{path}] section with named keys), not {} {}",
                article(v.type_str()),
                v.type_str()
            );
        }
        if let (Some(default), false) = (expect.as_str(), v.is_str()) {
            // toml's own message for a number given to a named choice is "wanted string or
            // table": say what the setting takes, with the default as the example.
            let line = locate(text, &path).map_or(String::new(), |l| format!(", line {l}"));
            let example = match default {
                "" => String::new(),
                d => format!(
                    ", such as the default {k} = {d:?} (configs/default.toml lists the choices)"
                ),
            };
            bail!(
                "invalid config in {label}{line}:\n{path} takes a string in quotes{example}, not {} {}",
                article(v.type_str()),
                v.type_str()
            );
        }
        walk(v, expect, &path, label, text)?;
    }
    Ok(())
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// Reads a config file, refusing one too large to be a config. The cap holds while reading
/// too: a device or pipe (`/dev/zero`, `<(…)`) has no size to check first.
pub fn read_capped(path: &std::path::Path) -> Result<String> {
    use anyhow::Context;
    use std::io::Read;
    let cannot = || format!("cannot read config file {}", path.display());
    let len = std::fs::metadata(path).with_context(cannot)?.len();
    if len > MAX_FILE_BYTES {
        bail!(
            "config file {} is {len} bytes: a configuration is at most {MAX_FILE_BYTES} bytes (is it the right file?)",
            path.display()
        );
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .with_context(cannot)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        bail!(
            "config file {} holds more than {MAX_FILE_BYTES} bytes: a configuration is at most that (is it the right file?)",
            path.display()
        );
    }
    String::from_utf8(bytes)
        .map_err(|e| anyhow::anyhow!("config file {} is not UTF-8 text ({e})", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn an_endless_file_is_refused_at_the_cap() {
        let e = read_capped(std::path::Path::new("/dev/zero")).unwrap_err();
        assert!(e.to_string().contains("holds more than"), "{e}");
    }

    #[test]
    fn an_array_where_a_table_belongs_is_refused_with_its_line() {
        let schema = toml::Value::try_from(crate::config::Config::default()).unwrap();
        let text = "[ppo]\nepochs = 2\n\ndata = 3\n";
        let user: toml::Value = toml::from_str("data = [\"alpaca\", \"1Day\"]\n").unwrap();
        let e = check_tables(&user, &schema, "u.toml", "data = [\"alpaca\", \"1Day\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("u.toml, line 1: data must be a table") && e.contains("an array"),
            "{e}"
        );
        let user: toml::Value = toml::from_str("[gating]\napproved = 1\n").unwrap();
        let e = check_tables(&user, &schema, "u.toml", "[gating]\napproved = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2: gating.approved must be a table"), "{e}");
        let fine: toml::Value = toml::from_str(text.replace("data = 3\n", "").as_str()).unwrap();
        assert!(check_tables(&fine, &schema, "u.toml", text).is_ok());
    }

    #[test]
    fn long_lines_are_clipped() {
        let m = clip_lines(&format!("a\n{}\nb", "x".repeat(10_000_000)));
        assert!(m.len() < 400 && m.contains("10000000 bytes"), "{}", m.len());
    }
}
