//! The fetch job: the synthetic market, or Alpaca. Alpaca requests run as tokio tasks within the
//! shared rate limit; each page comes back over a channel and is merged into the store at once, so
//! an interrupted fetch keeps what it got and a rerun continues after the last stored bar.

use super::ctx::Ctx;
use super::rundir::DataRef;
use super::{Event, JobSummary};
use crate::config::DataSource;
use crate::data::alpaca::{load_credentials, AlpacaError, ClientSettings, DataClient};
use crate::data::load::{data_days, generate_synthetic};
use crate::data::{budget, plan, SeriesInfo, Store};
use crate::market::{AssetClass, Bar, Symbol};
use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, TimeZone, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub const NO_KEYS: &str = "no Alpaca keys: set APCA_API_KEY_ID and APCA_API_SECRET_KEY (or ALPACA_KEYS_FILE=/path/to/keys). \
Without keys, use the built-in synthetic market (data.source = \"synthetic\") or bring your own bars with `quantdeck import FILE SYMBOL`; \
quantdeck never falls back to another source silently";

pub(super) fn fetch(ctx: &Ctx, names: &[String]) -> Result<String> {
    let cfg = ctx.cfg;
    let wanted: Vec<String> = if names.is_empty() {
        cfg.universe.symbols().into_iter().map(|s| s.name).collect()
    } else {
        names.to_vec()
    };
    for n in &wanted {
        crate::market::symbol::validate_name(n)?;
    }
    match cfg.data.source {
        DataSource::Synthetic => fetch_synthetic(ctx, &wanted),
        DataSource::Alpaca => fetch_alpaca(ctx, &wanted),
        DataSource::Store => bail!("data.source = \"store\": nothing to fetch — add bars with `quantdeck import FILE SYMBOL`"),
    }
}

/// The configured portfolio universe (`portfolio.symbols`, or `synthetic_symbols` on the synthetic
/// market) at `portfolio.timeframe` over `portfolio.start ..= portfolio.end`. The synthetic
/// universe is regenerated with its common factor; Alpaca bars are fetched as for any series.
pub(super) fn fetch_portfolio(ctx: &Ctx) -> Result<String> {
    let pf = &ctx.cfg.portfolio;
    let mut cfg = ctx.cfg.clone();
    cfg.data.timeframe = pf.timeframe;
    cfg.data.start = pf.start.clone();
    cfg.data.end = pf.end.clone();
    let symbols = pf.universe(cfg.data.source)?;
    let names: Vec<String> = symbols.iter().map(|s| s.name.clone()).collect();
    ctx.sink.info(format!(
        "portfolio universe: {} ({} symbols, {} bars, {} → {})",
        names.join(", "),
        names.len(),
        pf.timeframe,
        pf.start,
        pf.end
    ));
    let sub = Ctx {
        cfg: &cfg,
        events: ctx.events.clone(),
        ..*ctx
    };
    match cfg.data.source {
        DataSource::Alpaca => fetch_alpaca(&sub, &names),
        DataSource::Store => bail!("data.source = \"store\": nothing to fetch — add bars with `quantdeck import FILE SYMBOL`"),
        DataSource::Synthetic => {
            let (start, end) = pf.days()?;
            let store = Store::new(&ctx.paths.data);
            let (mut ok, mut failed) = (Vec::new(), Vec::new());
            for (i, sym) in symbols.iter().enumerate() {
                if ctx.cancel.is_cancelled() {
                    break;
                }
                let made = crate::data::load::synthetic_bars_between(&cfg, sym, pf.timeframe, start, end)
                    .and_then(|(bars, warning)| {
                        if let Some(w) = warning {
                            ctx.sink.warn(w);
                        }
                        store.write(sym, pf.timeframe, &bars, crate::data::synthetic::SOURCE)
                    });
                match made {
                    Ok(info) => {
                        ok.push(info.symbol.clone());
                        record(ctx, &info)?;
                    }
                    Err(e) => {
                        ctx.sink.error(format!("{sym}: {e:#}"));
                        failed.push(sym.name.clone());
                    }
                }
                ctx.sink.emit(Event::Progress {
                    done: i as u64 + 1,
                    total: symbols.len() as u64,
                    message: sym.name.clone(),
                });
            }
            outcome(ctx, &ok, &failed, "synthetic portfolio universe")
        }
    }
}

/// What the store now holds for a series, as an event (live progress and the final report).
fn fetched(info: &SeriesInfo) -> Event {
    Event::SymbolFetched {
        symbol: info.symbol.clone(),
        timeframe: info.timeframe,
        bars: info.bars,
        first: info.first,
        last: info.last,
        source: info.source.clone(),
    }
}

fn record(ctx: &Ctx, info: &SeriesInfo) -> Result<()> {
    ctx.sink.emit(fetched(info));
    ctx.run.update(|m| {
        m.data.push(DataRef {
            symbol: info.symbol.clone(),
            timeframe: info.timeframe.to_string(),
            source: info.source.clone(),
            bars: info.bars,
            first: info.first,
            last: info.last,
            sha256: info.sha256.clone(),
        })
    })
}

fn outcome(ctx: &Ctx, stored: &[String], failed: &[String], what: &str) -> Result<String> {
    let ok = stored.len();
    ctx.set_summary(JobSummary::Fetch {
        stored: stored.to_vec(),
        failed: failed.to_vec(),
    })?;
    if ok == 0 && !failed.is_empty() {
        bail!("no symbol could be fetched (failed: {})", failed.join("; "));
    }
    // Any failure fails the job (a non-zero exit), after what did arrive has been stored.
    if !failed.is_empty() {
        bail!(
            "{} of {} symbol(s) failed: {}; stored ({what}): {}",
            failed.len(),
            ok + failed.len(),
            failed.join("; "),
            stored.join(", ")
        );
    }
    Ok(format!("{ok} symbol(s) stored ({what})"))
}

/// Refuses, before any work, a date range whose series would not fit in memory (a series is
/// generated or merged whole); warns when it would take a large share.
fn check_fits(ctx: &Ctx, symbols: &[Symbol]) -> Result<()> {
    let tf = ctx.cfg.data.timeframe;
    let (first, last) = data_days(ctx.cfg)?;
    for class in AssetClass::ALL {
        if let Some(sym) = symbols.iter().find(|s| s.class == class) {
            let what = format!("{sym} {tf} from {first} to {last}");
            if let Some(w) = budget::check_range(&what, class, tf, first, last)? {
                ctx.sink.warn(w);
            }
        }
    }
    Ok(())
}

fn fetch_synthetic(ctx: &Ctx, wanted: &[String]) -> Result<String> {
    let known: Vec<Symbol> = wanted
        .iter()
        .filter_map(|n| ctx.cfg.universe.find(n).ok())
        .collect();
    check_fits(ctx, &known)?;
    let store = Store::new(&ctx.paths.data);
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    for (i, name) in wanted.iter().enumerate() {
        if ctx.cancel.is_cancelled() {
            break;
        }
        let aside = |sym: &Symbol| {
            let note = store.set_aside_other_source(
                sym,
                ctx.cfg.data.timeframe,
                crate::data::synthetic::SOURCE,
            )?;
            if let Some(n) = note {
                ctx.sink.warn(n);
            }
            Ok::<_, anyhow::Error>(())
        };
        match ctx
            .cfg
            .universe
            .find(name)
            .and_then(|sym| aside(&sym).map(|_| sym))
            .and_then(|sym| generate_synthetic(ctx.cfg, &store, &sym))
        {
            Ok(info) => {
                ok.push(info.symbol.clone());
                record(ctx, &info)?;
            }
            Err(e) => {
                ctx.sink.error(format!("{name}: {e:#}"));
                failed.push(name.clone());
            }
        }
        ctx.sink.emit(Event::Progress {
            done: i as u64 + 1,
            total: wanted.len() as u64,
            message: name.clone(),
        });
    }
    outcome(ctx, &ok, &failed, "synthetic market")
}

/// One request stream: symbols sharing a range (a multi-symbol request) or one symbol.
#[derive(Debug, Clone)]
struct Task {
    symbols: Vec<Symbol>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

enum Msg {
    Page(BTreeMap<String, Vec<Bar>>),
    Done(Task, Result<(), String>, bool),
}

fn fetch_alpaca(ctx: &Ctx, wanted: &[String]) -> Result<String> {
    let cfg = ctx.cfg;
    let tf = cfg.data.timeframe;
    let symbols: Vec<Symbol> = wanted
        .iter()
        .map(|n| ctx.cfg.universe.resolve(n))
        .collect::<Result<_>>()?;
    check_fits(ctx, &symbols)?;
    let (first_day, last_day) = data_days(cfg)?;
    let (creds, warnings) = load_credentials()?;
    for w in warnings {
        ctx.sink.warn(w);
    }
    let creds = creds.ok_or_else(|| anyhow!(NO_KEYS))?;
    let start = Utc.from_utc_datetime(&first_day.and_hms_opt(0, 0, 0).unwrap_or_default());
    let end = Utc
        .from_utc_datetime(&last_day.and_hms_opt(23, 59, 59).unwrap_or_default())
        .min(Utc::now());
    if end <= start {
        bail!("data.end must be after data.start");
    }
    let store = Store::new(&ctx.paths.data);

    // Plan: only what the store lacks — before its first bar, after its last, and the holes
    // between (see `data::plan`).
    let mut full: BTreeMap<AssetClass, Vec<Symbol>> = BTreeMap::new();
    let mut tasks = Vec::new();
    for sym in &symbols {
        // Only Alpaca's own bars count as fetched: another source's go aside first.
        if let Some(note) = store.set_aside_other_source(sym, tf, "alpaca")? {
            ctx.sink.warn(note);
        }
        let have = match store.read_or_quarantine(sym, tf) {
            Ok(b) => b,
            Err(e) => {
                ctx.sink
                    .warn(format!("{sym}: cached file unreadable, refetching: {e:#}"));
                None
            }
        };
        match have.as_deref() {
            None | Some([]) => full.entry(sym.class).or_default().push(sym.clone()),
            Some(bars) => {
                let stamps: Vec<DateTime<Utc>> = bars.iter().map(|b| b.ts).collect();
                let p = plan::plan(&stamps, sym.class, tf, start, end, plan::MAX_RANGES);
                if p.runs > 1 {
                    ctx.sink.info(format!(
                        "{sym}: {} missing {tf} bars in {} runs → {} request range(s)",
                        p.missing,
                        p.runs,
                        p.ranges.len()
                    ));
                }
                for (a, b) in p.ranges {
                    tasks.push(Task {
                        symbols: vec![sym.clone()],
                        start: a,
                        end: b,
                    });
                }
            }
        }
    }
    for group in full.into_values() {
        for chunk in group.chunks(20) {
            tasks.push(Task {
                symbols: chunk.to_vec(),
                start,
                end,
            });
        }
    }
    ctx.sink.info(format!(
        "Alpaca {tf}: {} request stream(s) for {} symbol(s), feed {}",
        tasks.len(),
        symbols.len(),
        cfg.data.feed
    ));

    let settings = ClientSettings::from_config(&cfg.data);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    let mut fatal: Option<anyhow::Error> = None;
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    rt.block_on(async {
        let client = Arc::new(DataClient::new(settings, creds)?);
        let permits = Arc::new(tokio::sync::Semaphore::new(cfg.data.concurrency.max(1)));
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Msg>(16);
        let mut set = tokio::task::JoinSet::new();
        let spawn = |set: &mut tokio::task::JoinSet<()>, task: Task| {
            let (client, permits, tx) = (client.clone(), permits.clone(), tx.clone());
            set.spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else { return };
                let page_tx = tx.clone();
                let res = client
                    .fetch_bars(&task.symbols, tf, task.start, task.end, |page| {
                        page_tx.try_send(Msg::Page(page)).or_else(|e| match e {
                            tokio::sync::mpsc::error::TrySendError::Full(m) => {
                                // Backpressure without blocking the runtime thread for long.
                                tokio::task::block_in_place(|| page_tx.blocking_send(m)).map_err(|_| anyhow!("fetch job stopped"))
                            }
                            tokio::sync::mpsc::error::TrySendError::Closed(_) => Err(anyhow!("fetch job stopped")),
                        })
                    })
                    .await;
                let (res, split) = match res {
                    Ok(_) => (Ok(()), false),
                    Err(e) => {
                        let is_symbol = e.downcast_ref::<AlpacaError>().is_some_and(|a| {
                            matches!(a, AlpacaError::UnknownSymbol { .. }) || matches!(a, AlpacaError::BadRequest { param, .. } if param == "symbols")
                        });
                        (Err(format!("{e:#}")), is_symbol && task.symbols.len() > 1)
                    }
                };
                let _ = tx.send(Msg::Done(task, res, split)).await;
            });
        };
        let total = tasks.len();
        for t in tasks {
            spawn(&mut set, t);
        }
        let mut done = 0usize;
        let mut open = total;
        while open > 0 {
            if ctx.cancel.is_cancelled() {
                set.abort_all();
                break;
            }
            let msg = tokio::select! {
                m = rx.recv() => m,
                // A task that panicked never sends its Done: fail instead of waiting forever.
                Some(Err(e)) = set.join_next(), if !set.is_empty() => {
                    if e.is_panic() {
                        fatal = Some(anyhow!("a fetch task crashed: {e}"));
                        set.abort_all();
                        break;
                    }
                    continue;
                }
                _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {
                    if ctx.cancel.is_cancelled() { set.abort_all(); break; }
                    continue;
                }
            };
            let Some(msg) = msg else { break };
            match msg {
                Msg::Page(page) => {
                    for (name, bars) in page {
                        let sym = symbols.iter().find(|s| s.name == name).cloned().unwrap_or_else(|| Symbol::parse(&name));
                        let info = match store.merge(&sym, tf, &bars, "alpaca") {
                            Ok(i) => i,
                            Err(e) => {
                                fatal = Some(e.context(format!("storing {name}")));
                                set.abort_all();
                                open = 0;
                                break;
                            }
                        };
                        *got.entry(name.clone()).or_default() += bars.len();
                        // Live per-symbol progress: what the store holds for it now.
                        ctx.sink.emit(fetched(&info));
                        ctx.sink.emit(Event::Progress { done: done as u64, total: total as u64, message: format!("{name}: +{} bars", got[&name]) });
                    }
                }
                Msg::Done(task, res, split) => {
                    open -= 1;
                    done += 1;
                    match res {
                        Ok(()) => {}
                        Err(_) if split => {
                            // Isolate the bad symbol: retry each symbol of the group on its own.
                            for s in task.symbols {
                                open += 1;
                                spawn(&mut set, Task { symbols: vec![s], start: task.start, end: task.end });
                            }
                        }
                        Err(e) => {
                            let names: Vec<_> = task.symbols.iter().map(|s| s.name.clone()).collect();
                            let auth = e.contains("(401)") || e.contains("(403)");
                            for n in &names {
                                failed.insert(n.clone(), e.clone());
                            }
                            ctx.sink.error(format!("{}: {e}", names.join(",")));
                            if auth {
                                fatal = Some(anyhow!(e));
                                set.abort_all();
                                open = 0;
                            }
                        }
                    }
                    ctx.sink.emit(Event::Progress { done: done as u64, total: total as u64, message: "requests".into() });
                }
            }
        }
        Ok::<(), anyhow::Error>(())
    })?;
    if let Some(e) = fatal {
        return Err(e);
    }
    let mut ok = Vec::new();
    let mut failures = Vec::new();
    let unique: BTreeSet<&Symbol> = symbols.iter().collect();
    for sym in unique {
        if let Some(e) = failed.get(&sym.name) {
            failures.push(format!("{sym}: {e}"));
            continue;
        }
        match store.info(sym, tf) {
            Some(info) if info.bars > 0 && info.source == "alpaca" => {
                ok.push(info.symbol.clone());
                record(ctx, &info)?;
            }
            _ => {
                let msg = format!("{sym}: Alpaca returned no {tf} bars in {} → {} (unknown symbol, or no trading in that range)", cfg.data.start, cfg.data.end);
                ctx.sink.error(msg.clone());
                failures.push(msg);
            }
        }
    }
    if ctx.cancel.is_cancelled() {
        return Ok(format!(
            "stopped; {} symbol(s) complete, partial data kept",
            ok.len()
        ));
    }
    outcome(ctx, &ok, &failures, "Alpaca")
}
