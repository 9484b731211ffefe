//! Notifications: a webhook POST per alert, in the shape `[notify].template` names (a generic
//! JSON hook, ntfy, Telegram, Discord), sent from a queue on a thread of its own. `send` never
//! waits: a slow, dead or refusing receiver can never stall or stop trading — a full queue drops
//! the alert and counts it. Errors are logged without the URL (it often carries a token).

use crate::config::{NotifyConfig, NotifyTemplate};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

/// Alerts waiting to be sent; past this the newest are dropped.
const QUEUE: usize = 256;
const TIMEOUT: Duration = Duration::from_secs(10);

/// One alert, as it goes out.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// The paper session (run id) it is about.
    pub session: String,
    /// A stable machine name: `fill`, `kill_switch`, `daemon_down`, …
    pub kind: String,
    pub urgent: bool,
    pub text: String,
    pub at: DateTime<Utc>,
}

/// The webhook's request body for `notice`.
pub fn body(template: NotifyTemplate, chat_id: &str, topic: &str, n: &Notice) -> Value {
    let line = format!("quantdeck {}: {}", n.session, n.text);
    match template {
        NotifyTemplate::Json => json!({
            "source": "quantdeck",
            "session": n.session,
            "kind": n.kind,
            "urgent": n.urgent,
            "text": n.text,
            "at": n.at.to_rfc3339_opts(SecondsFormat::Secs, true),
        }),
        NotifyTemplate::Ntfy => json!({
            "topic": topic,
            "title": format!("quantdeck {}", n.kind.replace('_', " ")),
            "message": format!("{}: {}", n.session, n.text),
            "priority": if n.urgent { 5 } else { 3 },
            "tags": [if n.urgent { "rotating_light" } else { "chart_with_upwards_trend" }, n.kind],
        }),
        NotifyTemplate::Telegram => json!({ "chat_id": chat_id, "text": line }),
        NotifyTemplate::Discord => json!({
            "username": "quantdeck",
            "content": if n.urgent { format!("**{line}**") } else { line },
        }),
    }
}

/// Where a template's request goes: ntfy publishes JSON to the server's root with the topic in
/// the body (`https://ntfy.sh/my-topic` → `https://ntfy.sh/`, topic `my-topic`).
pub fn target(template: NotifyTemplate, url: &str) -> (String, String) {
    if template != NotifyTemplate::Ntfy {
        return (url.to_string(), String::new());
    }
    let t = url.trim_end_matches('/');
    match t.rsplit_once('/') {
        Some((root, topic)) if root.contains("://") && !root.ends_with(':') => {
            (format!("{root}/"), topic.to_string())
        }
        _ => (format!("{t}/"), String::new()),
    }
}

/// The sending queue. Cloning shares it.
#[derive(Clone)]
pub struct Notifier {
    tx: SyncSender<Notice>,
    dropped: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    urgent_only: bool,
}

impl Notifier {
    /// Starts the sender thread; `None` when no webhook is configured.
    pub fn start(cfg: &NotifyConfig) -> Option<Notifier> {
        let url = cfg.webhook()?;
        let (tx, rx) = sync_channel(QUEUE);
        let sent = Arc::new(AtomicU64::new(0));
        let (template, chat, counter) = (cfg.template, cfg.chat_id.clone(), sent.clone());
        let spawned = std::thread::Builder::new()
            .name("notify".into())
            .spawn(move || deliver(rx, url, template, chat, counter));
        if let Err(e) = spawned {
            tracing::error!("notifications: cannot start the sender: {e}");
            return None;
        }
        Some(Notifier {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            sent,
            urgent_only: cfg.urgent_only,
        })
    }

    /// Queues a notice; never waits.
    pub fn send(&self, n: Notice) {
        if self.urgent_only && !n.urgent {
            return;
        }
        match self.tx.try_send(n) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Notices delivered so far (answered 2xx).
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits up to `limit` for `n` notices in all to have been delivered (at exit, so a
    /// "stopped" alert still goes out).
    pub fn wait_sent(&self, n: u64, limit: Duration) {
        let until = std::time::Instant::now() + limit;
        while self.sent() < n && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn deliver(
    rx: Receiver<Notice>,
    url: String,
    template: NotifyTemplate,
    chat: String,
    sent: Arc<AtomicU64>,
) {
    crate::data::alpaca::ensure_tls_provider();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("notifications: no runtime: {e}");
            return;
        }
    };
    let client = match reqwest::Client::builder()
        .timeout(TIMEOUT)
        .user_agent(concat!("quantdeck/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("notifications: cannot build the HTTP client: {e}");
            return;
        }
    };
    let (to, topic) = target(template, &url);
    while let Ok(n) = rx.recv() {
        let b = body(template, &chat, &topic, &n);
        let ok = rt.block_on(async {
            for attempt in 0..2 {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                match client.post(&to).json(&b).send().await {
                    Ok(r) if r.status().is_success() => return true,
                    // Never the URL: it may carry a token.
                    Ok(r) => tracing::warn!(
                        "notification {}: the webhook answered {}",
                        n.kind,
                        r.status()
                    ),
                    Err(e) => tracing::warn!(
                        "notification {}: the webhook could not be reached ({})",
                        n.kind,
                        if e.is_timeout() {
                            "timed out"
                        } else {
                            "connection failed"
                        }
                    ),
                }
            }
            false
        });
        if ok {
            sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice() -> Notice {
        Notice {
            session: "paper-1".into(),
            kind: "kill_switch".into(),
            urgent: true,
            text: "KILL SWITCH: flatten all".into(),
            at: DateTime::parse_from_rfc3339("2024-03-01T12:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    #[test]
    fn each_template_has_its_service_shape() {
        let n = notice();
        let j = body(NotifyTemplate::Json, "", "", &n);
        assert_eq!(j["kind"], "kill_switch");
        assert_eq!(j["at"], "2024-03-01T12:00:00Z");
        let (to, topic) = target(NotifyTemplate::Ntfy, "https://ntfy.sh/desk-alerts");
        assert_eq!(
            (to.as_str(), topic.as_str()),
            ("https://ntfy.sh/", "desk-alerts")
        );
        let b = body(NotifyTemplate::Ntfy, "", &topic, &n);
        assert_eq!(
            (b["topic"].as_str(), b["priority"].as_i64()),
            (Some("desk-alerts"), Some(5))
        );
        let t = body(NotifyTemplate::Telegram, "42", "", &n);
        assert_eq!(t["chat_id"], "42");
        assert!(t["text"].as_str().unwrap().contains("KILL SWITCH"));
        let d = body(NotifyTemplate::Discord, "", "", &n);
        assert!(d["content"]
            .as_str()
            .unwrap()
            .starts_with("**quantdeck paper-1"));
        let (to, _) = target(
            NotifyTemplate::Discord,
            "https://discord.com/api/webhooks/1/x",
        );
        assert_eq!(to, "https://discord.com/api/webhooks/1/x");
    }

    #[test]
    fn a_dead_receiver_never_blocks_the_sender() {
        // Nothing listens there: sends return at once, whatever happens to delivery.
        let cfg = NotifyConfig {
            url: "http://127.0.0.1:9/hook".into(),
            ..NotifyConfig::default()
        };
        let n = Notifier::start(&cfg).unwrap();
        let t = std::time::Instant::now();
        for _ in 0..(QUEUE * 2) {
            n.send(notice());
        }
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        assert!(n.dropped() > 0);
    }
}
