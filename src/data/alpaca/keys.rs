//! API keys from `APCA_API_KEY_ID` / `APCA_API_SECRET_KEY`, or a keys file named by
//! `ALPACA_KEYS_FILE`. The secret is never printed: `Debug` redacts it and errors name only the
//! key id.

use anyhow::{bail, Context, Result};
use std::fmt;
use std::path::Path;

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub key_id: String,
    secret: String,
}

impl Credentials {
    pub fn new(key_id: &str, secret: &str) -> Self {
        Credentials {
            key_id: key_id.trim().to_string(),
            secret: secret.trim().to_string(),
        }
    }

    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("key_id", &self.key_id)
            .field("secret", &"***")
            .finish()
    }
}

/// Keys from the environment or the keys file, plus warnings (e.g. a file others can read).
/// `Ok(None)` when no keys are configured at all.
pub fn load_credentials() -> Result<(Option<Credentials>, Vec<String>)> {
    let id = std::env::var("APCA_API_KEY_ID")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let secret = std::env::var("APCA_API_SECRET_KEY")
        .ok()
        .filter(|s| !s.trim().is_empty());
    match (id, secret) {
        (Some(i), Some(s)) => return Ok((Some(Credentials::new(&i, &s)), Vec::new())),
        (Some(_), None) => bail!("APCA_API_KEY_ID is set but APCA_API_SECRET_KEY is not: set both"),
        (None, Some(_)) => bail!("APCA_API_SECRET_KEY is set but APCA_API_KEY_ID is not: set both"),
        (None, None) => {}
    }
    match std::env::var_os("ALPACA_KEYS_FILE") {
        Some(p) => {
            let (c, w) = read_keys_file(Path::new(&p))?;
            Ok((Some(c), w))
        }
        None => Ok((None, Vec::new())),
    }
}

/// Accepts `APCA_API_KEY_ID=…` / `APCA_API_SECRET_KEY=…` lines (also `key_id`/`secret`, `:` or
/// `=`), or simply the key id on the first line and the secret on the second.
pub fn read_keys_file(path: &Path) -> Result<(Credentials, Vec<String>)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read ALPACA_KEYS_FILE {}", path.display()))?;
    let mut warnings = Vec::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                warnings.push(format!(
                    "{} is readable by other users: run `chmod 600 {}`",
                    path.display(),
                    path.display()
                ));
            }
        }
    }
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let (mut id, mut secret) = (None, None);
    for l in &lines {
        if let Some((k, v)) = l.split_once('=').or_else(|| l.split_once(':')) {
            let v = v.trim().trim_matches('"').trim_matches('\'');
            match k.trim().to_ascii_lowercase().as_str() {
                "apca_api_key_id" | "key_id" | "api_key" | "key" => id = Some(v.to_string()),
                "apca_api_secret_key" | "secret_key" | "secret" | "api_secret" => {
                    secret = Some(v.to_string())
                }
                _ => {}
            }
        }
    }
    if id.is_none() && secret.is_none() && lines.len() >= 2 && !lines[0].contains('=') {
        id = Some(lines[0].to_string());
        secret = Some(lines[1].to_string());
    }
    match (id, secret) {
        (Some(i), Some(s)) if !i.is_empty() && !s.is_empty() => Ok((Credentials::new(&i, &s), warnings)),
        _ => bail!(
            "{} does not hold Alpaca keys: write `APCA_API_KEY_ID=…` and `APCA_API_SECRET_KEY=…` lines (or the key id and the secret on two lines)",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_file_formats_and_redaction() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys");
        std::fs::write(
            &p,
            "# paper\nAPCA_API_KEY_ID=PKTEST\nAPCA_API_SECRET_KEY = \"s3cr3t\"\n",
        )
        .unwrap();
        let (c, _) = read_keys_file(&p).unwrap();
        assert_eq!(c.key_id, "PKTEST");
        assert_eq!(c.secret(), "s3cr3t");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        std::fs::write(&p, "PKTWO\nsecret2\n").unwrap();
        assert_eq!(read_keys_file(&p).unwrap().0.key_id, "PKTWO");
        std::fs::write(&p, "nothing useful\n").unwrap();
        let err = read_keys_file(&p).unwrap_err().to_string();
        assert!(err.contains("does not hold Alpaca keys"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::write(&p, "a\nb\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(read_keys_file(&p).unwrap().1[0].contains("chmod 600"));
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            assert!(read_keys_file(&p).unwrap().1.is_empty());
        }
    }
}
