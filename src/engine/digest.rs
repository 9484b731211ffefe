//! A content digest in every safetensors file quantdeck writes (models, checkpoints, training
//! states): SHA-256 over the metadata and every tensor (name, dtype, shape, bytes), kept in the
//! file's own metadata under [`DIGEST_KEY`], so the file carries its checksum wherever it is
//! copied. Every loader checks it first and refuses a file whose content no longer matches,
//! naming it: garbled bytes are never evaluated, walked forward or traded silently. Files from
//! before digests carry none and load as they did.

use anyhow::{anyhow, bail, Result};
use safetensors::View;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;

/// The metadata key of the digest.
pub const DIGEST_KEY: &str = "quantdeck.sha256";

/// SHA-256 of the metadata (less the digest itself) and the tensors, in name order; every
/// field is length-prefixed so that no two contents hash alike by shifting bytes between fields.
pub fn content_digest<V: View>(md: &HashMap<String, String>, tensors: &[(&str, V)]) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    let mut keys: Vec<&String> = md.keys().filter(|k| *k != DIGEST_KEY).collect();
    keys.sort();
    for k in keys {
        field(k.as_bytes());
        field(md[k].as_bytes());
    }
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| tensors[i].0);
    for i in order {
        let (name, t) = &tensors[i];
        field(name.as_bytes());
        field(format!("{:?}", t.dtype()).as_bytes());
        let shape: Vec<u8> = t
            .shape()
            .iter()
            .flat_map(|d| (*d as u64).to_le_bytes())
            .collect();
        field(&shape);
        field(&t.data());
    }
    format!("{:x}", h.finalize())
}

/// Serialises `tensors` with `md` and the digest of both.
pub fn serialize<V: View + Copy>(
    tensors: &[(&str, V)],
    mut md: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let digest = content_digest(&md, tensors);
    md.insert(DIGEST_KEY.to_string(), digest);
    safetensors::serialize(tensors.iter().map(|(n, t)| (*n, *t)), Some(md))
        .map_err(|e| anyhow!("cannot serialise the tensors: {e}"))
}

/// What checking a file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// The recorded digest matches the content.
    Matches,
    /// A file from before digests: nothing to check against.
    NoDigest,
}

/// Checks the digest a file records against its content; an error names the file.
pub fn verify(path: &Path, bytes: &[u8]) -> Result<Checked> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow!("{} is not a readable safetensors file: {e}", path.display()))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| anyhow!("{} is not a readable safetensors file: {e}", path.display()))?;
    let md = header.metadata().clone().unwrap_or_default();
    let Some(recorded) = md.get(DIGEST_KEY) else {
        return Ok(Checked::NoDigest);
    };
    let tensors = st.tensors();
    let views: Vec<(&str, &safetensors::tensor::TensorView)> =
        tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let now = content_digest(&md, &views);
    if &now != recorded {
        bail!(
            "{}: its content does not match the digest recorded when it was written (sha256 {} recorded, {} now): the file was changed or damaged after it was saved; refusing to use it (use another checkpoint of the run, or retrain)",
            path.display(),
            &recorded[..recorded.len().min(12)],
            &now[..12]
        );
    }
    Ok(Checked::Matches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn file() -> Vec<u8> {
        let a = Tensor::arange(0f32, 64.0, &Device::Cpu).unwrap();
        let b = Tensor::ones((2, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        let md = HashMap::from([("quantdeck".to_string(), "{\"x\":1}".to_string())]);
        serialize(&[("b", &b), ("a", &a)], md).unwrap()
    }

    #[test]
    fn a_written_file_verifies_and_any_garbled_byte_is_named() {
        let p = Path::new("runs/r/best.safetensors");
        let bytes = file();
        assert_eq!(verify(p, &bytes).unwrap(), Checked::Matches);
        // Garble 64 bytes of the weights (the case), then one byte of the metadata.
        let mut bad = bytes.clone();
        let n = bad.len();
        for b in &mut bad[n - 100..n - 36] {
            *b ^= 0x5a;
        }
        let e = verify(p, &bad).unwrap_err().to_string();
        assert!(
            e.contains("best.safetensors") && e.contains("does not match"),
            "{e}"
        );
        let mut bad = bytes.clone();
        let at = bytes.windows(2).position(|w| w == b"x\\").unwrap();
        bad[at] = b'y';
        assert!(verify(p, &bad).is_err());
        // A file without a digest (older) loads as before.
        let t = Tensor::ones(3, candle_core::DType::F32, &Device::Cpu).unwrap();
        let old = safetensors::serialize([("t", &t)], None).unwrap();
        assert_eq!(verify(p, &old).unwrap(), Checked::NoDigest);
    }
}
