//! TensorBoard's event files, written without protoc or a protobuf crate: a TFRecord stream (each
//! record = length (u64 LE), masked CRC-32C of the length, the bytes, masked CRC-32C of the
//! bytes) of `tensorflow.Event` messages. Only the fields quantdeck writes are encoded — wall
//! time, step, file version, a summary of scalar values, and a session-log START (which tells
//! readers to drop the points at and after its step: a resumed run's superseded curve) — and read
//! back, for the tests and for checking a file.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven.
pub fn crc32c(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// TFRecord's masked CRC: rotated right by 15 bits plus a constant.
pub fn masked_crc(data: &[u8]) -> u32 {
    crc32c(data).rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord around `data`.
pub fn frame(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// The records of a TFRecord stream, every CRC checked. A torn last record (a writer killed
/// mid-write) ends the stream; damage before the end is an error.
pub fn unframe(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 12 {
            break;
        }
        let (len_bytes, rest) = bytes.split_at(8);
        let len = u64::from_le_bytes(len_bytes.try_into()?) as usize;
        let len_crc = u32::from_le_bytes(rest[..4].try_into()?);
        if len_crc != masked_crc(len_bytes) {
            bail!("record {}: the length's CRC does not match", out.len());
        }
        let rest = &rest[4..];
        if rest.len() < len + 4 {
            break;
        }
        let (data, tail) = rest.split_at(len);
        if u32::from_le_bytes(tail[..4].try_into()?) != masked_crc(data) {
            bail!("record {}: the data's CRC does not match", out.len());
        }
        out.push(data.to_vec());
        bytes = &tail[4..];
    }
    Ok(out)
}

/// What an event carries besides its time and step.
#[derive(Debug, Clone, PartialEq)]
pub enum What {
    FileVersion(String),
    /// `Summary { value: [{ tag, simple_value }] }`.
    Scalars(Vec<(String, f32)>),
    /// `SessionLog { status: START }`.
    SessionStart,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub wall_time: f64,
    pub step: i64,
    pub what: What,
}

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn key(buf: &mut Vec<u8>, field: u32, wire: u8) {
    varint(buf, ((field as u64) << 3) | wire as u64);
}

fn bytes_field(buf: &mut Vec<u8>, field: u32, data: &[u8]) {
    key(buf, field, 2);
    varint(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

/// The `Event` message's bytes.
pub fn encode(e: &Event) -> Vec<u8> {
    let mut buf = Vec::new();
    key(&mut buf, 1, 1);
    buf.extend_from_slice(&e.wall_time.to_le_bytes());
    key(&mut buf, 2, 0);
    varint(&mut buf, e.step as u64);
    match &e.what {
        What::FileVersion(v) => bytes_field(&mut buf, 3, v.as_bytes()),
        What::Scalars(values) => {
            let mut summary = Vec::new();
            for (tag, v) in values {
                let mut value = Vec::new();
                bytes_field(&mut value, 1, tag.as_bytes());
                key(&mut value, 2, 5);
                value.extend_from_slice(&v.to_le_bytes());
                bytes_field(&mut summary, 1, &value);
            }
            bytes_field(&mut buf, 5, &summary);
        }
        What::SessionStart => {
            let mut log = Vec::new();
            key(&mut log, 1, 0);
            varint(&mut log, 1);
            bytes_field(&mut buf, 7, &log);
        }
    }
    buf
}

/// A protobuf reader over the wire types quantdeck writes (and skipping the others).
struct Fields<'a> {
    b: &'a [u8],
}

enum Val<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(&'a [u8]),
    Fixed32([u8; 4]),
}

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.b.split_first().context("truncated varint")?;
            self.b = rest;
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        bail!("varint too long")
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.b.len() < n {
            bail!("truncated field");
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }

    fn next(&mut self) -> Result<Option<(u32, Val<'a>)>> {
        if self.b.is_empty() {
            return Ok(None);
        }
        let k = self.varint()?;
        let field = (k >> 3) as u32;
        let val = match k & 7 {
            0 => Val::Varint(self.varint()?),
            1 => Val::Fixed64(self.take(8)?.try_into()?),
            2 => {
                let n = self.varint()? as usize;
                Val::Bytes(self.take(n)?)
            }
            5 => Val::Fixed32(self.take(4)?.try_into()?),
            w => bail!("wire type {w} is not read here"),
        };
        Ok(Some((field, val)))
    }
}

/// Reads an `Event` message back (the fields [`encode`] writes; others are skipped).
pub fn decode(bytes: &[u8]) -> Result<Event> {
    let mut e = Event {
        wall_time: 0.0,
        step: 0,
        what: What::Scalars(Vec::new()),
    };
    let mut f = Fields { b: bytes };
    while let Some((field, val)) = f.next()? {
        match (field, val) {
            (1, Val::Fixed64(b)) => e.wall_time = f64::from_le_bytes(b),
            (2, Val::Varint(v)) => e.step = v as i64,
            (3, Val::Bytes(b)) => e.what = What::FileVersion(String::from_utf8_lossy(b).into()),
            (5, Val::Bytes(b)) => e.what = What::Scalars(decode_summary(b)?),
            (7, Val::Bytes(_)) => e.what = What::SessionStart,
            _ => {}
        }
    }
    Ok(e)
}

fn decode_summary(bytes: &[u8]) -> Result<Vec<(String, f32)>> {
    let mut out = Vec::new();
    let mut f = Fields { b: bytes };
    while let Some((field, val)) = f.next()? {
        if let (1, Val::Bytes(v)) = (field, val) {
            let (mut tag, mut value) = (String::new(), f32::NAN);
            let mut g = Fields { b: v };
            while let Some((k, x)) = g.next()? {
                match (k, x) {
                    (1, Val::Bytes(t)) => tag = String::from_utf8_lossy(t).into(),
                    (2, Val::Fixed32(b)) => value = f32::from_le_bytes(b),
                    _ => {}
                }
            }
            out.push((tag, value));
        }
    }
    Ok(out)
}

/// Every event of a file.
pub fn read_file(path: &Path) -> Result<Vec<Event>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    unframe(&bytes)?.iter().map(|r| decode(r)).collect()
}

/// An open event file: `events.out.tfevents.<seconds>.<host>.<pid>.<n>` in a run directory.
pub struct Writer {
    file: std::fs::File,
    pub path: PathBuf,
}

impl Writer {
    /// Creates a new file in `dir` (never appends to another process's) and writes the file
    /// version event readers expect first.
    pub fn create(dir: &Path, suffix: &str) -> Result<Writer> {
        let now = chrono::Utc::now();
        let host = crate::jobs::rundir::hostname();
        let mut n = 0;
        loop {
            let name = format!(
                "events.out.tfevents.{}.{}.{}.{n}{suffix}",
                now.timestamp(),
                if host.is_empty() { "localhost" } else { &host },
                std::process::id()
            );
            let path = dir.join(name);
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    let mut w = Writer { file, path };
                    w.write(&Event {
                        wall_time: now.timestamp_micros() as f64 / 1e6,
                        step: 0,
                        what: What::FileVersion("brain.Event:2".into()),
                    })?;
                    return Ok(w);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", path.display()))
                }
            }
        }
    }

    /// Appends one event and flushes it (readers tail the file while the run goes on).
    pub fn write(&mut self, e: &Event) -> Result<()> {
        self.file
            .write_all(&frame(&encode(e)))
            .and_then(|_| self.file.flush())
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn crc32c_matches_the_standard_check_values() {
        // RFC 3720 (iSCSI) B.4 and the common "123456789" check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
        let inc: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&inc), 0x46DD_794E);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn records_and_events_read_back_as_written() {
        let mut rng = Rng::new(1);
        for _ in 0..200 {
            let events: Vec<Event> = (0..1 + rng.below(8))
                .map(|i| Event {
                    wall_time: 1.7e9 + rng.uniform(),
                    step: (rng.next_u64() >> (1 + rng.below(62))) as i64,
                    what: match rng.below(3) {
                        0 => What::FileVersion("brain.Event:2".into()),
                        1 => What::SessionStart,
                        _ => What::Scalars(
                            (0..rng.below(5))
                                .map(|k| (format!("train/t{i}_{k}"), rng.uniform() as f32 - 0.5))
                                .collect(),
                        ),
                    },
                })
                .collect();
            let stream: Vec<u8> = events.iter().flat_map(|e| frame(&encode(e))).collect();
            let back: Vec<Event> = unframe(&stream)
                .unwrap()
                .iter()
                .map(|r| decode(r).unwrap())
                .collect();
            assert_eq!(back, events);
            // A torn tail is dropped, never misread; a flipped byte inside is an error.
            let cut = stream.len() - 1 - rng.below(10);
            assert!(unframe(&stream[..cut]).unwrap().len() < events.len());
            let mut bad = stream.clone();
            let at = rng.below(bad.len());
            bad[at] ^= 0x10;
            // Every byte is under a CRC: a flipped one is caught, never read as another event.
            assert!(unframe(&bad).is_err());
        }
    }
}
