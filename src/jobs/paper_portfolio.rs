//! The paper job for a portfolio model: one model over its recorded universe, alone in its
//! session. The simulated broker replays the members' stored bars after the model's validation
//! end; Alpaca paper gets the members' bars from the same feed single-symbol sessions use.

use super::ctx::Ctx;
use super::paper::{
    alpaca_client, check_verdict, finish, open_state, output, run_daemon, settings, sim_broker,
    summary, Claimed,
};
use super::paper_feed::alpaca_feed;
use super::resolve_model;
use crate::broker::alpaca::{spawn_trade_updates, TradingClient, TradingSettings};
use crate::broker::{Broker, BrokerKind, SimBroker};
use crate::data::Store;
use crate::engine::{checkpoint, ModelMeta};
use crate::live::journal::Journal;
use crate::live::{Daemon, PortfolioSlot, Strategy};
use crate::market::{Bar, Symbol};
use crate::sim::TradingRules;
use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;

/// A portfolio model to trade, loaded and checked.
pub(super) struct LoadedPortfolio {
    run: String,
    meta: ModelMeta,
    slot: PortfolioSlot,
    /// Each member's stored bars, in the model's column order.
    bars: Vec<Vec<Bar>>,
}

/// The session's portfolio model, when its run is one. A portfolio model trades alone: mixing
/// it with other models in one session is refused.
pub(super) fn portfolio_model(ctx: &Ctx, runs: &[String]) -> Result<Option<LoadedPortfolio>> {
    let mut found = None;
    for run in runs {
        let choice = resolve_model(ctx.paths, run)?;
        let meta = checkpoint::read_meta(&choice.path)?;
        if meta.portfolio.is_some() {
            found = Some((run.clone(), choice));
        }
    }
    let Some((run, choice)) = found else {
        return Ok(None);
    };
    if runs.len() > 1 {
        let others: Vec<&str> = runs
            .iter()
            .map(String::as_str)
            .filter(|r| *r != run)
            .collect();
        bail!(
            "{run} is a portfolio model: it trades its whole universe alone, so it cannot share a session with {}; start a separate session for each",
            others.join(", ")
        );
    }
    let (policy, meta) = checkpoint::load_policy(&choice.path)?;
    let Some(spec) = meta.portfolio.clone() else {
        bail!("{} lost its portfolio layout", choice.path.display());
    };
    let symbols: Vec<Symbol> = spec
        .symbols
        .iter()
        .map(|name| Symbol {
            name: name.clone(),
            class: meta.class,
        })
        .collect();
    let store = Store::new(&ctx.paths.data);
    let mut bars = Vec::with_capacity(symbols.len());
    for s in &symbols {
        bars.push(store.read(s, spec.timeframe).map_err(|e| {
            anyhow!(
                "portfolio member {s}: no stored {} bars ({e:#}); fetch the universe first",
                spec.timeframe
            )
        })?);
    }
    ctx.sink.info(format!(
        "portfolio model {run}: {} — {}, {} (it saw {})",
        choice.why,
        spec.describe(),
        symbols
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        meta.seen_range()
    ));
    let slot = PortfolioSlot::new(&run, spec, symbols, policy);
    Ok(Some(LoadedPortfolio {
        run,
        meta,
        slot,
        bars,
    }))
}

pub(super) fn paper_portfolio(
    ctx: &Ctx,
    claimed: &Claimed,
    pf: LoadedPortfolio,
    kind: BrokerKind,
    bars: Option<usize>,
    window: Option<super::replay::Window>,
) -> Result<String> {
    let cfg = ctx.cfg;
    let live_broker = kind != BrokerKind::Sim;
    check_verdict(
        ctx,
        &pf.run,
        &format!(
            "the portfolio model over {} symbols",
            pf.meta.portfolio.as_ref().map_or(0, |p| p.n_symbols())
        ),
        live_broker,
    )?;
    debug_assert_eq!(claimed.train_runs, vec![pf.run.clone()]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = ctx.dir().path.clone();
    let journal = Journal::open(&dir.join(crate::live::JOURNAL))?;
    // Walk-forward's expectation per day, when it graded the model under this session's rules.
    let expected = super::replay::expected_daily(ctx, &pf.run, &TradingRules::from_config(cfg))
        .map(|e| HashMap::from([(pf.run.clone(), e)]))
        .unwrap_or_default();
    let (ended, summary) = match kind {
        BrokerKind::Sim => {
            let (broker, _) = sim_broker(cfg, &dir, false)?;
            let replay = super::replay::Replay { bars, window };
            rt.block_on(run_sim(ctx, broker, pf, journal, replay, expected))?
        }
        _ => {
            let (client, settings, creds) = alpaca_client(ctx)?;
            rt.block_on(run_alpaca(
                ctx, client, settings, creds, pf, journal, expected,
            ))?
        }
    };
    finish(ctx, ended, summary)
}

/// Warms the model's history with every member's bars before `until` (exclusive), as many as a
/// decision reads.
fn warm(slot: &mut PortfolioSlot, bars: &[Vec<Bar>], until: DateTime<Utc>) {
    let keep = slot.history_needed() + 4;
    for (i, series) in bars.iter().enumerate() {
        let end = series.partition_point(|b| b.ts < until);
        for b in &series[end.saturating_sub(keep)..end] {
            slot.push(i, *b);
        }
    }
}

async fn run_sim(
    ctx: &Ctx<'_>,
    broker: SimBroker,
    pf: LoadedPortfolio,
    journal: Journal,
    replay: super::replay::Replay,
    expected: HashMap<String, f64>,
) -> Result<(crate::live::Ended, crate::jobs::JobSummary)> {
    let LoadedPortfolio {
        run,
        meta,
        mut slot,
        bars: series,
    } = pf;
    let mut state = open_state(ctx, &broker).await?;
    let (times, start) = unseen_times(&slot, &series, &replay, meta.seen_until())?;
    let until = replay.end(ctx, &mut state, || times.clone())?;
    // A restarted session continues after the last bar time it decided.
    let resume = state
        .portfolio
        .as_ref()
        .and_then(|p| p.last_bar)
        .map_or(start, |d| {
            times
                .iter()
                .copied()
                .find(|t| *t > d)
                .unwrap_or(d + Duration::seconds(1))
        });
    warm(&mut slot, &series, resume);
    let per_symbol = replay_bars(&slot, &series, resume, until);
    let total: usize = per_symbol.iter().map(|(_, b)| b.len()).sum();
    ctx.sink.info(format!(
        "paper trading portfolio model {run} ({} members) on the simulated broker: {total} unseen bar(s) to replay from {} at {} bar time(s)/s",
        slot.symbols.len(),
        resume.format("%Y-%m-%d %H:%M"),
        ctx.cfg.live.bars_per_second
    ));
    let feed = replay.feed(per_symbol, ctx.cfg.live.bars_per_second);
    let out = output(ctx);
    let mut d = Daemon::new(
        ctx.dir().path.clone(),
        &out,
        broker,
        settings(ctx.cfg, ctx.cfg.backtest.commission),
        state,
        journal,
        Strategy::Portfolio(Box::new(slot)),
    );
    d.expected_daily = expected;
    let ended = run_daemon(&out, &mut d, feed, None).await?;
    Ok((ended, summary(ctx, &d, &[run])))
}

/// The unseen bar times to replay (sorted, distinct), from the first one with a full history
/// behind it and the replay window's start, and the first of them; none is an error.
fn unseen_times(
    slot: &PortfolioSlot,
    series: &[Vec<Bar>],
    replay: &super::replay::Replay,
    seen: DateTime<Utc>,
) -> Result<(Vec<DateTime<Utc>>, DateTime<Utc>)> {
    let mut times: Vec<DateTime<Utc>> =
        series.iter().flat_map(|b| b.iter().map(|x| x.ts)).collect();
    times.sort();
    times.dedup();
    let ready_from = times.get(slot.history_needed().saturating_sub(1)).copied();
    let from = replay.window.as_ref().map(|w| w.from);
    if from.is_some_and(|f| f <= seen) {
        bail!(
            "the replay window starts {} but the portfolio model saw everything up to {}: replay only bars after that",
            from.unwrap_or(seen).format("%Y-%m-%d %H:%M"),
            seen.format("%Y-%m-%d %H:%M")
        );
    }
    times.retain(|t| {
        *t > seen && ready_from.is_some_and(|r| *t >= r) && from.is_none_or(|f| *t >= f)
    });
    let Some(&start) = times.first() else {
        bail!(
            "no unseen bars of the portfolio's members to replay: the model saw everything up to {}; fetch newer bars first",
            seen.format("%Y-%m-%d %H:%M")
        );
    };
    Ok((times, start))
}

/// Each member's bars from `resume` until the replay's end.
fn replay_bars(
    slot: &PortfolioSlot,
    series: &[Vec<Bar>],
    resume: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
) -> Vec<(String, Vec<Bar>)> {
    slot.symbols
        .iter()
        .zip(series)
        .map(|(s, b)| {
            (
                s.name.clone(),
                b.iter()
                    .filter(|x| x.ts >= resume && until.is_none_or(|u| x.ts <= u))
                    .copied()
                    .collect(),
            )
        })
        .collect()
}

async fn run_alpaca(
    ctx: &Ctx<'_>,
    client: TradingClient,
    settings_t: TradingSettings,
    creds: crate::data::alpaca::Credentials,
    pf: LoadedPortfolio,
    journal: Journal,
    expected: HashMap<String, f64>,
) -> Result<(crate::live::Ended, crate::jobs::JobSummary)> {
    let LoadedPortfolio {
        run,
        mut slot,
        bars: series,
        ..
    } = pf;
    let state = open_state(ctx, &client).await?;
    let now = Utc::now();
    warm(&mut slot, &series, now);
    let tf = slot.timeframe().duration();
    let need = slot.history_needed() as i32;
    // Minutes after the newest stored bar (or enough for the history) are fetched over REST.
    let since = match slot.last_time() {
        Some(t) if now - t < tf * need => t + tf - Duration::minutes(1),
        _ => now - tf * need * 4,
    };
    let feed = alpaca_feed(ctx, &creds, slot.symbols.clone(), since)?;
    let trades = spawn_trade_updates(settings_t, creds);
    ctx.sink.info(format!(
        "paper trading portfolio model {run} ({} members) on {} (Alpaca paper fills: no slippage or fees modelled, random partial fills about 10 % of the time)",
        slot.symbols.len(),
        client.kind().label()
    ));
    let out = output(ctx);
    let mut d = Daemon::new(
        ctx.dir().path.clone(),
        &out,
        client,
        settings(ctx.cfg, 0.0),
        state,
        journal,
        Strategy::Portfolio(Box::new(slot)),
    )
    .with_streams();
    d.expected_daily = expected;
    let ended = run_daemon(&out, &mut d, feed, Some(trades)).await?;
    Ok((ended, summary(ctx, &d, &[run])))
}
