//! Plain HTTP/1.1, one request per connection (`Connection: close`): parse the request (body
//! included), route it to the data or trading handler, record it, and write the answer with the
//! scripted fault applied (rate-limit headers, truncation, slowness, a dropped connection).

use super::{data, trading, Fault, Request, State};
use chrono::Utc;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct HttpReq {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// An answer, and how to misbehave while giving it.
pub struct Resp {
    pub status: u16,
    pub body: Vec<u8>,
    pub fault: Option<Fault>,
    /// Wait this long before answering (after the work is done).
    pub delay: Option<Duration>,
    /// Close without answering.
    pub drop: bool,
}

impl Resp {
    pub fn json(status: u16, v: &serde_json::Value) -> Resp {
        Resp {
            status,
            body: v.to_string().into_bytes(),
            fault: None,
            delay: None,
            drop: false,
        }
    }

    pub fn raw(status: u16, body: Vec<u8>, fault: Option<Fault>) -> Resp {
        Resp {
            status,
            body,
            fault,
            delay: None,
            drop: false,
        }
    }
}

/// Alpaca's error body, with a code in Alpaca's style (status × 100 000).
pub fn err(status: u16, msg: &str) -> (u16, Vec<u8>) {
    (
        status,
        serde_json::json!({"code": status as u32 * 100_000, "message": msg})
            .to_string()
            .into_bytes(),
    )
}

pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> std::io::Result<Option<HttpReq>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("GET").to_string();
    let target = first.next().unwrap_or("/").to_string();
    let headers: BTreeMap<String, String> = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    let want: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < want {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let (path, qs) = target.split_once('?').unwrap_or((&target, ""));
    let query = qs
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('=').map(|(k, v)| (decode(k), decode(v))))
        .collect();
    Ok(Some(HttpReq {
        method,
        path: path.to_string(),
        query,
        headers,
        body,
    }))
}

fn is_data_path(path: &str) -> bool {
    path.starts_with("/v2/stocks/") || path.starts_with("/v1beta3/") || path == "/v2/calendar"
}

pub async fn serve(mut sock: tokio::net::TcpStream, st: Arc<Mutex<State>>) -> std::io::Result<()> {
    let Some(req) = read_request(&mut sock).await? else {
        return Ok(());
    };
    let resp = if is_data_path(&req.path) {
        data::respond(&st, &req)
    } else {
        trading::respond(&st, &req)
    };
    st.lock()
        .unwrap_or_else(|p| p.into_inner())
        .requests
        .push(Request {
            method: req.method.clone(),
            path: req.path.clone(),
            query: req.query.clone(),
            at: Instant::now(),
            status: resp.status,
        });
    if let Some(d) = resp.delay {
        tokio::time::sleep(d).await;
    }
    if resp.drop {
        return Ok(());
    }
    write(&mut sock, resp).await
}

async fn write(sock: &mut tokio::net::TcpStream, resp: Resp) -> std::io::Result<()> {
    let Resp {
        status,
        mut body,
        fault,
        ..
    } = resp;
    let mut promised = body.len();
    let mut extra = String::new();
    match &fault {
        Some(Fault::TooMany { reset_in_s }) => {
            extra = format!(
                "X-Ratelimit-Remaining: 0\r\nX-Ratelimit-Reset: {}\r\n",
                Utc::now().timestamp() + reset_in_s
            )
        }
        Some(Fault::TruncatedBody) => body.truncate(body.len() / 2),
        Some(Fault::MalformedJson) => {
            body.truncate(body.len() / 2);
            promised = body.len();
        }
        Some(Fault::Slow(d)) => tokio::time::sleep(*d).await,
        _ => {}
    }
    if !matches!(fault, Some(Fault::TooMany { .. })) {
        let reset = Utc::now().timestamp() + 60;
        extra = format!(
            "X-Ratelimit-Limit: 200\r\nX-Ratelimit-Remaining: 150\r\nX-Ratelimit-Reset: {reset}\r\n"
        );
    }
    let reason = match status {
        200 => "OK",
        207 => "Multi-Status",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        _ => "Error",
    };
    let head = format!("HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {promised}\r\n{extra}Connection: close\r\n\r\n");
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(&body).await?;
    sock.flush().await
}
