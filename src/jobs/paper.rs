//! The paper job: the daemon of `live`, in a run directory that outlives the process. A session is
//! one set of models on one broker account; starting it again (after a crash, a kill -9, a reboot)
//! continues the same session — same run directory, same order ids, same latches — instead of
//! starting a new one (`paper_claim`). The daemon reports through [`super::PaperOutput`]: events
//! into the run directory, alerts to the notification queue.

use super::ctx::Ctx;
use super::paper_feed::alpaca_feed;
use super::replay::{Replay, ReplaySpec};
use super::{resolve_model, JobSummary, PaperOutput};
use crate::broker::alpaca::{spawn_trade_updates, TradingClient, TradingSettings};
use crate::broker::{Broker, BrokerKind, SimBroker, SimCosts};
use crate::config::Config;
use crate::data::alpaca::load_credentials;
use crate::data::Store;
use crate::engine::{checkpoint, HostPolicy, ModelMeta};
use crate::eval::GateClass;
use crate::features::FeatureSpec;
use crate::live::ids::session_tag;
use crate::live::journal::Journal;
use crate::live::state::DaemonState;
use crate::live::{Alert, AsyncFeed, Daemon, Ended, ModelSlot, Output, Settings, Strategy};
use crate::market::{AssetClass, Bar, Symbol};
use crate::notify::Notifier;
use crate::sim::{Account, Rules, TradingRules};
use anyhow::{anyhow, bail, Result};
use chrono::{Duration, Utc};
use std::collections::HashMap;
use std::sync::Arc;

pub(super) use super::paper_claim::{broker_kind, Claimed};

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
        orders: d.orders_sent(),
        fills: d.fills(),
    }
}

pub(super) async fn open_state<B: Broker>(ctx: &Ctx<'_>, broker: &B) -> Result<DaemonState> {
    let dir = &ctx.dir().path;
    if let Some(mut s) = DaemonState::load(dir)? {
        s.journal_lost = journal_lost(ctx, &s, broker.kind())?;
        return Ok(s);
    }
    // A session that journaled orders cannot lose its state quietly: its latches, levels and
    // start would be made up again.
    let journal = dir.join(crate::live::JOURNAL);
    if Journal::read(&journal).is_ok_and(|e| !e.is_empty()) {
        bail!(
            "{} is missing but {} holds this session's orders: restore state.json, or start a separate session with --new-session",
            dir.join(crate::live::state::STATE_FILE).display(),
            journal.display()
        );
    }
    let acct = broker
        .account()
        .await
        .map_err(|e| anyhow!("the broker's account: {e}"))?;
    let equity = crate::broker::simulated::f(acct.equity);
    let s = DaemonState::new(
        &session_tag(ctx.run.id()),
        broker.kind(),
        equity,
        Utc::now(),
    );
    s.save(dir)?;
    Ok(s)
}

/// A journal that lost entries while the session was stopped: refused on the simulated broker
/// (its orders and fills would be sent or counted again); on Alpaca, whose orders are the
/// truth, said on the console and rebuilt from the broker (`true`).
fn journal_lost(ctx: &Ctx, s: &DaemonState, kind: BrokerKind) -> Result<bool> {
    let path = ctx.dir().path.join(crate::live::JOURNAL);
    let Some(loss) = s.journal_loss(&path) else {
        return Ok(false);
    };
    if kind == BrokerKind::Sim {
        bail!("{loss}: continuing would send or count its orders and fills again; restore it, or start a separate session with --new-session");
    }
    ctx.sink.error(format!(
        "{loss}: the broker is the source of truth — this session's orders are taken from it and their fills are not reported again"
    ));
    Ok(true)
}

/// The daemon's output for this job: its events, and its alerts to `[notify]`'s webhook.
pub(super) fn output<'a>(ctx: &'a Ctx<'a>) -> PaperOutput<'a> {
    PaperOutput::new(ctx.sink, ctx.cancel)
        .with_run(ctx.run)
        .with_notifier(Notifier::start(&ctx.cfg.notify))
}

/// Runs the daemon, with a "started" and a "stopped" alert around it (the last one waited for
/// a moment, so it leaves before the process does).
pub(super) async fn run_daemon<B: Broker, F: AsyncFeed>(
    out: &PaperOutput<'_>,
    d: &mut Daemon<'_, B>,
    feed: F,
    trades: Option<crate::broker::alpaca::TradeStream>,
) -> Result<Ended> {
    out.alert(&Alert::Started {
        what: format!("{} on {}", out_label(d), d.broker().kind().label()),
    });
    let ended = d.run(feed, trades).await;
    let why = match &ended {
        Ok(Ended::ReplayDone) => "the replay finished".to_string(),
        Ok(Ended::Stopped) => "stopped by command".to_string(),
        Ok(Ended::Cancelled) => "stopped by a signal".to_string(),
        Err(e) => format!("failed: {e:#}"),
    };
    out.alert(&Alert::Stopped { why });
    if let Some(n) = out.notifier() {
        let (want, until) = (
            n.sent() + 1,
            std::time::Instant::now() + std::time::Duration::from_secs(3),
        );
        while n.sent() < want && std::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    ended
}

fn out_label<B: Broker>(d: &Daemon<'_, B>) -> String {
    format!("session {}", d.state().session)
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
    let (mut per_symbol, slots) = replay_slots(ctx, &state, &models, &replay)?;
    let until = replay.end(ctx, &mut state, || {
        let mut times: Vec<_> = per_symbol
            .iter()
            .flat_map(|(_, b)| b.iter().map(|x| x.ts))
            .collect();
        times.sort();
        times.dedup();
        times
    })?;
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
    let out = output(ctx);
    let mut d = Daemon::new(
        ctx.dir().path.clone(),
        &out,
        broker,
        settings(ctx.cfg, commission),
        state,
        journal,
        Strategy::Models(slots),
    );
    d.expected_daily = expected;
    let ended = run_daemon(&out, &mut d, feed, None).await?;
    let runs: Vec<String> = models.iter().map(|m| m.run.clone()).collect();
    Ok((ended, summary(ctx, &d, &runs)))
}

/// Bars to replay, per symbol.
type PerSymbol = Vec<(String, Vec<Bar>)>;

/// The replay: each model's unseen bars, from where a previous run of the session stopped, and
/// its slot warmed on the bars before them.
fn replay_slots(
    ctx: &Ctx<'_>,
    state: &DaemonState,
    models: &[Loaded],
    replay: &Replay,
) -> Result<(PerSymbol, Vec<ModelSlot>)> {
    let mut per_symbol = Vec::new();
    let mut slots = Vec::new();
    for l in models {
        let first = replay.first(
            &l.bars,
            l.meta.seen_until(),
            &format!("{} ({})", l.symbol, l.run),
        )?;
        let mut s = slot(
            l,
            ctx,
            state,
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
    Ok((per_symbol, slots))
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
    let out = output(ctx);
    let mut d = Daemon::new(
        ctx.dir().path.clone(),
        &out,
        client,
        settings(cfg, 0.0),
        state,
        journal,
        Strategy::Models(slots),
    )
    .with_streams();
    d.expected_daily = expected;
    let ended = run_daemon(&out, &mut d, feed, Some(trades)).await?;
    let runs: Vec<String> = models.iter().map(|m| m.run.clone()).collect();
    Ok((ended, summary(ctx, &d, &runs)))
}
