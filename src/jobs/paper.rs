//! The paper job: the daemon of `live`, in a run directory that outlives the process. A session is
//! one set of models on one broker account; starting it again (after a crash, a kill -9, a reboot)
//! continues the same session — same run directory, same order ids, same latches — instead of
//! starting a new one. A lock file in the directory (and, for Alpaca, one per account: Alpaca
//! allows one trade-updates connection per account) keeps a second daemon out.

use super::ctx::Ctx;
use super::replay::{ReplaySpec, Window};
use super::rundir::{hostname, Manifest};
use super::{list_runs, resolve_model, resolve_train_run, JobKind, JobStatus, JobSummary, RunDir};
use crate::broker::alpaca::{spawn_trade_updates, TradingClient, TradingSettings};
use crate::broker::{Broker, BrokerKind, SimBroker, SimCosts};
use crate::config::{BarSource, BrokerChoice, Config};
use crate::data::alpaca::stream::{spawn_bar_stream, BarFeed, DataStreamSettings, StockFeed};
use crate::data::alpaca::{load_credentials, ClientSettings, DataClient};
use crate::data::Store;
use crate::engine::{checkpoint, HostPolicy, ModelMeta};
use crate::eval::GateClass;
use crate::features::FeatureSpec;
use crate::live::feed::{AlpacaFeed, ReplayFeed};
use crate::live::ids::session_tag;
use crate::live::journal::Journal;
use crate::live::state::DaemonState;
use crate::live::{Daemon, Ended, ModelSlot, Settings};
use crate::market::{AssetClass, Bar, Symbol};
use crate::paths::{write_atomic, Paths};
use crate::sim::{Account, Rules, TradingRules};
use anyhow::{anyhow, bail, Context, Result};
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

const SESSION_FILE: &str = "session.json";
const LOCK_FILE: &str = "daemon.lock";

/// What makes two starts the same session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SessionInfo {
    key: String,
    train_runs: Vec<String>,
    broker: BrokerKind,
    /// The Alpaca key id (never the secret), or `sim`.
    account: String,
}

/// A paper session's run directory, claimed by this process.
pub(super) struct Claimed {
    pub dir: RunDir,
    pub manifest: Manifest,
    pub resumed: bool,
    pub train_runs: Vec<String>,
    /// Held while the daemon runs (dropping a `File` releases its lock).
    _locks: Vec<File>,
}

fn broker_kind(cfg: &Config) -> BrokerKind {
    match cfg.live.broker {
        BrokerChoice::Sim => BrokerKind::Sim,
        BrokerChoice::Alpaca => {
            let s = TradingSettings::from_env(cfg.live.allow_live);
            if s.base_url.contains("://api.alpaca.markets") {
                BrokerKind::AlpacaLive
            } else {
                BrokerKind::AlpacaPaper
            }
        }
    }
}

fn lock(path: &Path, what: &str) -> Result<File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(path).unwrap_or_default();
            bail!("{what} ({})", holder.trim())
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

fn stamp(f: &mut File) {
    use std::io::Write;
    let _ = f.set_len(0);
    let _ = writeln!(f, "pid {} on {}", std::process::id(), hostname());
}

/// Finds this session's run directory (or makes one) and locks it.
pub(super) fn claim(
    paths: &Paths,
    cfg: &Config,
    runs: &[String],
    new_session: bool,
) -> Result<Claimed> {
    if runs.is_empty() {
        bail!("name at least one training run to trade (or `latest`)");
    }
    let mut train_runs = Vec::new();
    for r in runs {
        let id = resolve_train_run(paths, r)?;
        if !train_runs.contains(&id) {
            train_runs.push(id);
        }
    }
    train_runs.sort();
    let kind = broker_kind(cfg);
    let account = match kind {
        BrokerKind::Sim => "sim".to_string(),
        _ => load_credentials()?
            .0
            .map(|c| c.key_id)
            .ok_or_else(|| anyhow!(NO_TRADING_KEYS))?,
    };
    let key = {
        let text = format!("{kind:?}|{account}|{}", train_runs.join(","));
        let h = Sha256::digest(text.as_bytes());
        h.iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let info = SessionInfo {
        key: key.clone(),
        train_runs: train_runs.clone(),
        broker: kind,
        account: account.clone(),
    };
    let mut locks = Vec::new();
    if kind != BrokerKind::Sim {
        let dir = paths.home.join("locks");
        std::fs::create_dir_all(&dir)?;
        let tag: String = Sha256::digest(account.as_bytes())
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut f = lock(
            &dir.join(format!("alpaca-{tag}.lock")),
            "another paper daemon is already trading this Alpaca account (Alpaca allows one trade-updates connection per account); stop it first (`quantdeck paper stop RUN`)",
        )?;
        stamp(&mut f);
        locks.push(f);
    }
    let existing = (!new_session)
        .then(|| {
            list_runs(paths).into_iter().rev().find(|r| {
                // A simulated replay that ran to its end is over: the next start is a new one.
                let replay_done =
                    kind == BrokerKind::Sim && r.manifest.status == JobStatus::Completed;
                r.manifest.kind == JobKind::Paper
                    && !replay_done
                    && std::fs::read_to_string(r.path.join(SESSION_FILE))
                        .ok()
                        .and_then(|t| serde_json::from_str::<SessionInfo>(&t).ok())
                        .is_some_and(|s| s.key == key)
            })
        })
        .flatten();
    let (dir, mut manifest, resumed) = match existing {
        Some(r) => {
            let dir = RunDir::open(paths, &r.manifest.id)?;
            (dir, r.manifest, true)
        }
        None => {
            let symbols: Vec<String> = train_runs
                .iter()
                .filter_map(|id| RunDir::open(paths, id).ok()?.read_manifest().ok())
                .map(|m| m.label)
                .collect();
            let (dir, m) = RunDir::create(
                paths,
                JobKind::Paper,
                &symbols.join("-"),
                serde_json::to_value(cfg)?,
                train_runs.first().cloned(),
            )?;
            write_atomic(
                &dir.artifact(SESSION_FILE),
                &serde_json::to_vec_pretty(&info)?,
            )?;
            (dir, m, false)
        }
    };
    let mut f = lock(
        &dir.artifact(LOCK_FILE),
        &format!("paper session {} is already running", dir.id),
    )?;
    stamp(&mut f);
    locks.push(f);
    if resumed {
        manifest.status = JobStatus::Running;
        manifest.finished = None;
        manifest.host = hostname();
        manifest.pid = std::process::id();
        manifest.heartbeat = Some(Utc::now());
        manifest.message = String::new();
        manifest.config = serde_json::to_value(cfg)?;
        dir.write_manifest(&manifest)?;
    }
    Ok(Claimed {
        dir,
        manifest,
        resumed,
        train_runs,
        _locks: locks,
    })
}

pub const NO_TRADING_KEYS: &str = "paper trading on Alpaca needs paper trading keys: set APCA_API_KEY_ID and APCA_API_SECRET_KEY (or ALPACA_KEYS_FILE=/path/to/keys), made under Paper Trading → API Keys in the Alpaca dashboard. Without keys, `quantdeck paper RUN` trades on the built-in simulated broker (live.broker = \"sim\")";

/// One model to trade, loaded and checked.
struct Loaded {
    run: String,
    meta: ModelMeta,
    symbol: Symbol,
    spec: FeatureSpec,
    policy: HostPolicy,
    bars: Vec<Bar>,
}

fn load_models(ctx: &Ctx, runs: &[String], live_broker: bool) -> Result<Vec<Loaded>> {
    let mut out: Vec<Loaded> = Vec::new();
    for run in runs {
        let choice = resolve_model(ctx.paths, run)?;
        let (policy, meta) = checkpoint::load_policy(&choice.path)?;
        let spec = FeatureSpec::current(meta.feature_spec.window, &ctx.events);
        meta.check_layout(&spec)
            .map_err(|e| anyhow!("cannot trade {}: {e:#}", choice.path.display()))?;
        if let Some(w) = spec.events_warning(&meta.feature_spec) {
            ctx.sink.warn(w);
        }
        let symbol = Symbol {
            name: meta.symbol.clone(),
            class: meta.class,
        };
        if let Some(o) = out.iter().find(|l| l.symbol.name == symbol.name) {
            bail!(
                "{} and {} both trade {symbol}: one model per symbol",
                o.run,
                run
            );
        }
        check_verdict(ctx, run, &symbol.to_string(), live_broker)?;
        let store = Store::new(&ctx.paths.data);
        let bars = match store.read(&symbol, meta.timeframe) {
            Ok(b) => b,
            Err(e) if live_broker => {
                ctx.sink.warn(format!(
                    "{symbol}: no stored {} history ({e:#}); warming up from Alpaca",
                    meta.timeframe
                ));
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        ctx.sink.info(format!(
            "{symbol}: {} — {}, {} (it saw {})",
            run,
            choice.why,
            meta.feature_spec.describe(),
            meta.seen_range()
        ));
        out.push(Loaded {
            run: run.clone(),
            policy,
            symbol,
            spec,
            meta,
            bars,
        });
    }
    Ok(out)
}

/// Which gate verdict a training run's model has: Alpaca trading wants a gated, non-DROP model;
/// a simulated session trades anything, with a warning.
pub(super) fn check_verdict(ctx: &Ctx, run: &str, what: &str, live_broker: bool) -> Result<()> {
    let verdict = super::gate::verdict_of(ctx.paths, run).map(|r| r.class);
    match verdict {
        Some(GateClass::Approved) => {}
        Some(GateClass::Review) => ctx.sink.warn(format!(
            "{what} ({run}) is gated REVIEW, not APPROVED: trading it anyway"
        )),
        Some(GateClass::Drop) if live_broker => bail!(
            "{run} ({what}) was gated DROP: it does not trade on Alpaca (retrain, or gate again)"
        ),
        None if live_broker => bail!(
            "{run} ({what}) has not been gated: run `quantdeck gate {run}` (and walk-forward) before trading it on Alpaca"
        ),
        _ => ctx.sink.warn(format!(
            "{what} ({run}) is not gated APPROVED: fine for a simulated session"
        )),
    }
    Ok(())
}

pub(super) fn settings(cfg: &Config, commission: f64) -> Settings {
    Settings {
        rules: TradingRules::from_config(cfg),
        commission,
        order_timeout: std::time::Duration::from_secs(cfg.live.order_timeout_s),
        extended_hours: cfg.live.extended_hours,
        late_bar_grace: Duration::seconds(10),
    }
}

fn slot(l: &Loaded, ctx: &Ctx, state: &DaemonState, allow_short: bool) -> ModelSlot {
    let mut book = Account::new(&Rules {
        initial_cash: state.initial_equity,
        full_position: 0.0,
        slippage: 0.0,
        commission: 0.0,
        allow_short,
    });
    if let Some(m) = state.models.get(&l.symbol.name) {
        book.level = m.level;
    }
    ModelSlot::new(
        l.symbol.clone(),
        l.meta.timeframe,
        &l.run,
        l.spec.clone(),
        Arc::new(ctx.events.clone()),
        l.policy.clone(),
        book,
        allow_short,
    )
}

pub(super) fn paper(
    ctx: &Ctx,
    claimed: &Claimed,
    bars: Option<usize>,
    replay: Option<&ReplaySpec>,
    confirm_live: bool,
) -> Result<String> {
    let cfg = ctx.cfg;
    let kind = broker_kind(cfg);
    if kind == BrokerKind::AlpacaLive && !(cfg.live.allow_live && confirm_live) {
        bail!(
            "refusing Alpaca's LIVE (real-money) host: set live.allow_live = true in your config AND pass --confirm-live; paper trading is the default"
        );
    }
    if claimed.resumed {
        ctx.sink.warn(format!(
            "continuing paper session {} (same order ids, same latches)",
            ctx.run.id()
        ));
    }
    let window = match replay {
        Some(_) if kind != BrokerKind::Sim => {
            bail!("--fold, --from and --to replay stored bars: they need the simulated broker (--broker sim)")
        }
        Some(spec) => Some(super::replay::resolve(ctx, &claimed.train_runs, spec)?),
        None => None,
    };
    if let Some(pf) = super::paper_portfolio::portfolio_model(ctx, &claimed.train_runs)? {
        return super::paper_portfolio::paper_portfolio(ctx, claimed, pf, kind, bars, window);
    }
    let models = load_models(ctx, &claimed.train_runs, kind != BrokerKind::Sim)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = ctx.dir().path.clone();
    let journal = Journal::open(&dir.join(crate::live::JOURNAL))?;
    let rules = TradingRules::from_config(cfg);
    let expected: HashMap<String, f64> = models
        .iter()
        .filter_map(|m| {
            super::replay::expected_daily(ctx, &m.run, &rules).map(|e| (m.symbol.name.clone(), e))
        })
        .collect();
    let (ended, summary) = match kind {
        BrokerKind::Sim => {
            let (broker, costs) = sim_broker(cfg, &dir, cfg.env.allow_short_equity)?;
            let replay = Replay { bars, window };
            rt.block_on(run_sim(
                ctx,
                broker,
                models,
                journal,
                expected,
                replay,
                costs.commission,
            ))?
        }
        _ => {
            let (client, settings, creds) = alpaca_client(ctx)?;
            rt.block_on(run_alpaca(
                ctx, client, settings, creds, models, journal, expected,
            ))?
        }
    };
    finish(ctx, ended, summary)
}

/// The simulated broker of a session in `dir` (its book persists there), with the backtest's
/// cash and costs.
pub(super) fn sim_broker(
    cfg: &Config,
    dir: &std::path::Path,
    allow_short: bool,
) -> Result<(SimBroker, SimCosts)> {
    let costs = SimCosts {
        slippage: cfg.backtest.slippage,
        commission: cfg.backtest.commission,
    };
    let broker = SimBroker::open(
        cfg.backtest.initial_cash,
        costs,
        allow_short,
        Some(dir.join(crate::live::SIM_BROKER)),
    )?;
    Ok((broker, costs))
}

/// Alpaca's trading client from the environment's paper (or live) keys.
pub(super) fn alpaca_client(
    ctx: &Ctx,
) -> Result<(
    TradingClient,
    TradingSettings,
    crate::data::alpaca::Credentials,
)> {
    let (creds, warnings) = load_credentials()?;
    for w in warnings {
        ctx.sink.warn(w);
    }
    let creds = creds.ok_or_else(|| anyhow!(NO_TRADING_KEYS))?;
    let settings = TradingSettings::from_env(ctx.cfg.live.allow_live);
    let client = TradingClient::new(settings.clone(), creds.clone())?;
    Ok((client, settings, creds))
}

/// Records the session's summary and says how it ended.
pub(super) fn finish(ctx: &Ctx, ended: Ended, summary: JobSummary) -> Result<String> {
    ctx.set_summary(summary.clone())?;
    let JobSummary::Paper {
        equity,
        initial_equity,
        orders,
        fills,
        ..
    } = summary
    else {
        return Ok(String::new());
    };
    let how = match ended {
        Ended::ReplayDone => "replay finished",
        Ended::Stopped => "stopped by command",
        Ended::Cancelled => "stopped by signal",
    };
    Ok(format!(
        "{how}: equity {equity:.2} ({:+.2} % since the session started), {orders} order(s) sent, {fills} fill(s)",
        (equity / initial_equity - 1.0) * 100.0
    ))
}

pub(super) fn summary<B: Broker>(ctx: &Ctx, d: &Daemon<'_, B>, runs: &[String]) -> JobSummary {
    let snap = d.snapshot();
    ctx.sink.info(format!("session {} ends", ctx.run.id()));
    JobSummary::Paper {
        train_runs: runs.to_vec(),
        broker: snap.broker,
        session_key: d.state().session.clone(),
        initial_equity: d.state().initial_equity,
        equity: snap.account.equity,
        orders: d.orders_sent,
        fills: d.fills,
    }
}

pub(super) async fn open_state<B: Broker>(ctx: &Ctx<'_>, broker: &B) -> Result<DaemonState> {
    let dir = &ctx.dir().path;
    match DaemonState::load(dir)? {
        Some(s) => Ok(s),
        None => {
            let acct = broker
                .account()
                .await
                .map_err(|e| anyhow!("the broker's account: {e}"))?;
            let equity = crate::broker::simulated::f(acct.equity);
            let s = DaemonState::new(&session_tag(ctx.run.id()), broker.kind(), equity);
            s.save(dir)?;
            Ok(s)
        }
    }
}

/// What a simulated session replays: `bars` bar times of the unseen bars, or a window.
pub(super) struct Replay {
    pub bars: Option<usize>,
    pub window: Option<Window>,
}

impl Replay {
    /// The first bar index of `bars` to decide: after what the model saw (`seen`), at the
    /// window's start when there is one.
    pub(super) fn first(
        &self,
        bars: &[Bar],
        seen: chrono::DateTime<Utc>,
        what: &str,
    ) -> Result<usize> {
        match &self.window {
            None => Ok(bars.partition_point(|b| b.ts <= seen)),
            Some(w) if w.from <= seen => bail!(
                "the replay window starts {} but {what} saw everything up to {}: replay only bars after that",
                w.from.format("%Y-%m-%d %H:%M"),
                seen.format("%Y-%m-%d %H:%M")
            ),
            Some(w) => Ok(bars.partition_point(|b| b.ts < w.from)),
        }
    }

    /// The last bar time to replay, among the distinct bar times `times` (sorted).
    pub(super) fn until(
        &self,
        times: &[chrono::DateTime<Utc>],
        default_bars: usize,
    ) -> Option<chrono::DateTime<Utc>> {
        match &self.window {
            Some(w) => times.iter().rev().find(|t| **t <= w.to).copied(),
            None => {
                let n = self.bars.unwrap_or(default_bars);
                times.get(n.min(times.len()).saturating_sub(1)).copied()
            }
        }
    }

    /// The replay feed: a window ends on a bar that only marks the books.
    pub(super) fn feed(&self, per_symbol: Vec<(String, Vec<Bar>)>, speed: f64) -> ReplayFeed {
        let feed = ReplayFeed::new(per_symbol, None, speed);
        if self.window.is_some() {
            feed.marking_the_last()
        } else {
            feed
        }
    }
}

async fn run_sim(
    ctx: &Ctx<'_>,
    broker: SimBroker,
    models: Vec<Loaded>,
    journal: Journal,
    expected: HashMap<String, f64>,
    replay: Replay,
    commission: f64,
) -> Result<(Ended, JobSummary)> {
    let mut state = open_state(ctx, &broker).await?;
    // The replay: each model's unseen bars, from where a previous run of the session stopped.
    let mut per_symbol = Vec::new();
    let mut slots = Vec::new();
    for l in &models {
        let first = replay.first(
            &l.bars,
            l.meta.seen_until(),
            &format!("{} ({})", l.symbol, l.run),
        )?;
        let mut s = slot(
            l,
            ctx,
            &state,
            ctx.cfg.env.allow_short_equity && l.symbol.class == AssetClass::Equity,
        );
        let need = s.history_needed();
        let start = first.max(need.saturating_sub(1));
        if start >= l.bars.len() {
            bail!(
                "no unseen {} bars to replay: the model saw everything up to {}; fetch newer bars first",
                l.symbol,
                l.meta.seen_until().format("%Y-%m-%d %H:%M")
            );
        }
        // A restarted session continues after the last bar each model decided.
        let decided = state.models.get(&l.symbol.name).and_then(|m| m.last_bar);
        let resume = decided.map_or(start, |c| l.bars.partition_point(|b| b.ts <= c).max(start));
        for b in &l.bars[resume.saturating_sub(need)..resume] {
            s.push(*b);
        }
        per_symbol.push((l.symbol.name.clone(), l.bars[resume..].to_vec()));
        slots.push(s);
    }
    if state.replay_until.is_none() {
        let mut times: Vec<_> = per_symbol
            .iter()
            .flat_map(|(_, b)| b.iter().map(|x| x.ts))
            .collect();
        times.sort();
        times.dedup();
        state.replay_until = replay.until(&times, ctx.cfg.live.replay_bars);
        state.save(&ctx.dir().path)?;
    }
    let until = state.replay_until;
    for (_, b) in per_symbol.iter_mut() {
        b.retain(|x| until.is_none_or(|u| x.ts <= u));
    }
    let total: usize = per_symbol.iter().map(|(_, b)| b.len()).sum();
    ctx.sink.info(format!(
        "paper trading {} model(s) on the simulated broker: {total} unseen bar(s) to replay at {} bar(s)/s{}",
        slots.len(),
        ctx.cfg.live.bars_per_second,
        state
            .models
            .values()
            .filter_map(|m| m.last_bar)
            .max()
            .map(|c| format!(", continuing after {}", c.format("%Y-%m-%d %H:%M")))
            .unwrap_or_default()
    ));
    let feed = replay.feed(per_symbol, ctx.cfg.live.bars_per_second);
    let mut d = Daemon::new(
        ctx.dir().path.clone(),
        ctx.sink,
        ctx.cancel,
        broker,
        settings(ctx.cfg, commission),
        state,
        journal,
        slots,
        false,
    );
    d.expected_daily = expected;
    let ended = d.run(feed, None).await?;
    let runs: Vec<String> = models.iter().map(|m| m.run.clone()).collect();
    Ok((ended, summary(ctx, &d, &runs)))
}

#[allow(clippy::too_many_arguments)]
async fn run_alpaca(
    ctx: &Ctx<'_>,
    client: TradingClient,
    settings_t: TradingSettings,
    creds: crate::data::alpaca::Credentials,
    models: Vec<Loaded>,
    journal: Journal,
    expected: HashMap<String, f64>,
) -> Result<(Ended, JobSummary)> {
    let cfg = ctx.cfg;
    let state = open_state(ctx, &client).await?;
    let mut slots = Vec::new();
    let mut since = Utc::now() - Duration::days(1);
    for l in &models {
        let asset = client
            .asset(&l.symbol.name)
            .await
            .map_err(|e| anyhow!("{}: {e}", l.symbol))?;
        let allow_short = l.symbol.class == AssetClass::Equity
            && asset.shortable
            && asset.easy_to_borrow
            && cfg.env.allow_short_equity;
        let mut s = slot(l, ctx, &state, allow_short);
        let need = s.history_needed();
        for b in &l.bars[l.bars.len().saturating_sub(need)..] {
            s.push(*b);
        }
        // Minutes after the newest stored bar (or enough for the warm-up) are fetched over REST.
        let tf = l.meta.timeframe.duration();
        let from = match s.last_bar() {
            Some(b) if Utc::now() - b.ts < tf * (need as i32) => b.ts + tf - Duration::minutes(1),
            _ => Utc::now() - tf * (need as i32) * 4,
        };
        since = since.min(from);
        slots.push(s);
    }
    let symbols: Vec<Symbol> = models.iter().map(|m| m.symbol.clone()).collect();
    let feed = alpaca_feed(ctx, &creds, symbols, since)?;
    let trades = spawn_trade_updates(settings_t, creds);
    ctx.sink.info(format!(
        "paper trading {} model(s) on {} (Alpaca paper fills: no slippage or fees modelled, random partial fills about 10 % of the time)",
        slots.len(),
        client.kind().label()
    ));
    let mut d = Daemon::new(
        ctx.dir().path.clone(),
        ctx.sink,
        ctx.cancel,
        client,
        settings(cfg, 0.0),
        state,
        journal,
        slots,
        true,
    );
    d.expected_daily = expected;
    let ended = d.run(feed, Some(trades)).await?;
    let runs: Vec<String> = models.iter().map(|m| m.run.clone()).collect();
    Ok((ended, summary(ctx, &d, &runs)))
}

/// Alpaca's bars for `symbols`: the stream (stocks and crypto apart) or REST polling, with the
/// minutes since `since` fetched over REST first.
pub(super) fn alpaca_feed(
    ctx: &Ctx<'_>,
    creds: &crate::data::alpaca::Credentials,
    symbols: Vec<Symbol>,
    since: chrono::DateTime<Utc>,
) -> Result<AlpacaFeed> {
    let cfg = ctx.cfg;
    let data = Arc::new(DataClient::new(
        ClientSettings::from_config(&cfg.data),
        creds.clone(),
    )?);
    let mut streams = Vec::new();
    let mut poll_reason = None;
    if cfg.live.bars == BarSource::Stream {
        let ds = DataStreamSettings::from_env();
        let stocks: Vec<String> = symbols
            .iter()
            .filter(|s| s.class == AssetClass::Equity)
            .map(|s| s.name.clone())
            .collect();
        let crypto: Vec<String> = symbols
            .iter()
            .filter(|s| s.class == AssetClass::Crypto)
            .map(|s| s.name.clone())
            .collect();
        if !stocks.is_empty() {
            let feed = StockFeed::parse(&cfg.live.feed).unwrap_or(StockFeed::Iex);
            if let Some(w) = test_feed_warning(feed, &stocks) {
                ctx.sink.warn(w);
            }
            streams.push(spawn_bar_stream(
                ds.clone(),
                creds.clone(),
                BarFeed::Stocks(feed),
                stocks,
            ));
        }
        if !crypto.is_empty() {
            streams.push(spawn_bar_stream(ds, creds.clone(), BarFeed::Crypto, crypto));
        }
    } else {
        poll_reason = Some("live.bars = \"poll\"".to_string());
    }
    Ok(AlpacaFeed::new(
        streams,
        data,
        symbols,
        since,
        std::time::Duration::from_secs(cfg.live.poll_interval_s),
        poll_reason,
    ))
}

/// Flatten-all on a session whose daemon is not running: this process takes the session's lock
/// (so no daemon starts meanwhile), latches flatten in its state, and does it at the broker —
/// reporting in the session's own events, as the daemon would.
pub fn flatten_now(paths: &Paths, cfg: &Config, run_id: &str) -> Result<String> {
    let dir = RunDir::open(paths, run_id)?;
    let info: SessionInfo = serde_json::from_str(
        &std::fs::read_to_string(dir.artifact(SESSION_FILE))
            .with_context(|| format!("{run_id} is not a paper session"))?,
    )?;
    let _lock = lock(
        &dir.artifact(LOCK_FILE),
        &format!("paper session {run_id} is running: it takes the command itself"),
    )?;
    // The queued command is now done here.
    let _ = crate::live::commands::take(&dir.path);
    let sink = super::EventSink::to_file(run_id, &dir.events_path())?;
    let cancel = super::CancelToken::new();
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
    let journal = Journal::open(&dir.artifact(crate::live::JOURNAL))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
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
                let mut d = Daemon::new(
                    dir.path.clone(),
                    &sink,
                    &cancel,
                    broker,
                    settings(cfg, 0.0),
                    state,
                    journal,
                    Vec::new(),
                    false,
                );
                d.flatten_once().await
            }
            _ => {
                let creds = load_credentials()?
                    .0
                    .ok_or_else(|| anyhow!(NO_TRADING_KEYS))?;
                let client =
                    TradingClient::new(TradingSettings::from_env(cfg.live.allow_live), creds)?;
                let mut d = Daemon::new(
                    dir.path.clone(),
                    &sink,
                    &cancel,
                    client,
                    settings(cfg, 0.0),
                    state,
                    journal,
                    Vec::new(),
                    false,
                );
                d.flatten_once().await
            }
        }
    })?;
    Ok(result)
}

/// Alpaca's `test` stock feed streams only FAKEPACA: models on other symbols would wait forever.
fn test_feed_warning(feed: StockFeed, stocks: &[String]) -> Option<String> {
    let silent: Vec<&str> = stocks
        .iter()
        .map(String::as_str)
        .filter(|s| *s != "FAKEPACA")
        .collect();
    (feed == StockFeed::Test && !silent.is_empty()).then(|| {
        format!(
            "live.feed = \"test\" streams only FAKEPACA: {} will get no live bars from it. \
             Use iex or sip to trade them; outside market hours, a crypto model trades around \
             the clock",
            silent.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_feed_warns_about_every_symbol_it_will_not_stream() {
        let syms = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let w = test_feed_warning(StockFeed::Test, &syms(&["AAPL", "FAKEPACA", "MSFT"])).unwrap();
        assert!(w.contains(": AAPL, MSFT will get no live bars"), "{w}");
        assert_eq!(
            test_feed_warning(StockFeed::Test, &syms(&["FAKEPACA"])),
            None
        );
        assert_eq!(test_feed_warning(StockFeed::Iex, &syms(&["AAPL"])), None);
    }
}
