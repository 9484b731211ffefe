//! `paper flatten` on a session whose daemon is not running: done by this process, under the
//! session's lock, through the same daemon code as a running session's flatten.

use super::paper::{settings, NO_TRADING_KEYS};
use super::paper_claim::{lock, SessionInfo, LOCK_FILE, SESSION_FILE};
use super::{PaperOutput, RunDir};
use crate::broker::alpaca::{TradingClient, TradingSettings};
use crate::broker::{BrokerKind, SimBroker, SimCosts};
use crate::config::Config;
use crate::data::alpaca::load_credentials;
use crate::live::journal::Journal;
use crate::live::state::DaemonState;
use crate::live::{Alert, Daemon, Output, Strategy};
use crate::notify::Notifier;
use crate::paths::Paths;
use anyhow::{anyhow, Context, Result};
use chrono::Utc;

/// Flatten-all on a session whose daemon is not running: this process takes the session's lock
/// (so no daemon starts meanwhile), latches flatten in its state, and does it at the broker —
/// reporting in the session's own events, as the daemon would.
pub fn flatten_now(paths: &Paths, cfg: &Config, run_id: &str) -> Result<String> {
    let dir = RunDir::open(paths, run_id)?;
    let file = dir.artifact(SESSION_FILE);
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "{run_id} is not a paper session ({} missing)",
            file.display()
        )
    })?;
    let info: SessionInfo =
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", file.display()))?;
    let _lock = lock(
        &dir.artifact(LOCK_FILE),
        &format!("paper session {run_id} is running: it takes the command itself"),
    )?;
    // The queued command is now done here.
    let _ = crate::live::commands::take(&dir.path);
    let sink = super::EventSink::to_file(run_id, &dir.events_path())?;
    let cancel = super::CancelToken::new();
    let out = PaperOutput::new(&sink, &cancel).with_notifier(Notifier::start(&cfg.notify));
    let mut state = DaemonState::load(&dir.path)?
        .ok_or_else(|| anyhow!("{run_id} never started trading: nothing to flatten"))?;
    state.flatten = Some(crate::live::state::Flatten {
        requested: Utc::now(),
        by: "cli".into(),
        done: None,
        ok: false,
        rows: Vec::new(),
    });
    state.save(&dir.path)?;
    out.alert(&Alert::KillSwitch {
        detail: "flatten all, asked by cli (daemon not running)".into(),
    });
    let journal = Journal::open(&dir.artifact(crate::live::JOURNAL))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let none = Strategy::Models(Vec::new());
    let result = rt.block_on(async {
        match info.broker {
            BrokerKind::Sim => {
                let broker = SimBroker::open(
                    cfg.backtest.initial_cash,
                    SimCosts {
                        slippage: cfg.backtest.slippage,
                        commission: cfg.backtest.commission,
                    },
                    cfg.env.allow_short_equity,
                    Some(dir.artifact(crate::live::SIM_BROKER)),
                )?;
                let s = settings(cfg, 0.0);
                let mut d = Daemon::new(dir.path.clone(), &out, broker, s, state, journal, none);
                d.flatten_once().await
            }
            _ => {
                let creds = load_credentials()?
                    .0
                    .ok_or_else(|| anyhow!(NO_TRADING_KEYS))?;
                let client =
                    TradingClient::new(TradingSettings::from_env(cfg.live.allow_live), creds)?;
                let s = settings(cfg, 0.0);
                let mut d = Daemon::new(dir.path.clone(), &out, client, s, state, journal, none);
                d.flatten_once().await
            }
        }
    })?;
    if let Some(n) = out.notifier() {
        n.wait_sent(1, std::time::Duration::from_secs(3));
    }
    Ok(result)
}
