//! `[notify]`: alerts that reach a phone — fills, rejections, the kill switch, halts, pause, a
//! stale feed, a symbol stopped on a book mismatch, daemon start and stop — sent as a JSON POST
//! to a webhook, in the shape of a generic JSON hook or of ntfy, Telegram or Discord. The same
//! settings serve `quantdeck watch`, which alerts when a session's heartbeat goes stale (a
//! crashed daemon cannot report its own death).

use serde::{Deserialize, Serialize};

/// The body a webhook is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyTemplate {
    /// `{"source":"quantdeck","session":…,"kind":…,"urgent":…,"text":…,"at":…}`.
    Json,
    /// ntfy's JSON publishing: the URL names the topic (`https://ntfy.sh/my-topic`).
    Ntfy,
    /// Telegram's `sendMessage` (`https://api.telegram.org/bot<TOKEN>/sendMessage`, `chat_id`).
    Telegram,
    /// A Discord channel webhook.
    Discord,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// The webhook. Empty: no notifications. Never written into a run's manifest, events or
    /// logs (it often carries a token); `QUANTDECK_NOTIFY_URL` in the environment overrides it.
    #[serde(skip_serializing)]
    pub url: String,
    pub template: NotifyTemplate,
    /// Telegram's chat id (`template = "telegram"`).
    pub chat_id: String,
    /// Send only what calls for action (kill switch, halts, stale feed, rejections, a stopped
    /// symbol, the daemon stopping or down), not every fill.
    pub urgent_only: bool,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            url: String::new(),
            template: NotifyTemplate::Json,
            chat_id: String::new(),
            urgent_only: false,
        }
    }
}

impl NotifyConfig {
    /// The webhook to use: the environment's, else the file's; `None` when there is none.
    pub fn webhook(&self) -> Option<String> {
        std::env::var("QUANTDECK_NOTIFY_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .or_else(|| Some(self.url.clone()).filter(|u| !u.trim().is_empty()))
            .map(|u| u.trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhook_is_read_but_never_written_out() {
        let c: NotifyConfig = toml::from_str(
            "url = \"https://api.telegram.org/botSECRET/sendMessage\"\ntemplate = \"telegram\"\nchat_id = \"42\"",
        )
        .unwrap();
        assert_eq!(c.template, NotifyTemplate::Telegram);
        assert!(c.url.contains("SECRET"));
        let json = serde_json::to_string(&c).unwrap();
        assert!(!json.contains("SECRET"), "{json}");
        assert!(toml::from_str::<NotifyConfig>("template = \"pager\"").is_err());
    }
}
