//! The fetch job: the synthetic market, or Alpaca (`fetch_alpaca`: requests as tokio tasks
//! within the shared rate limit, each page merged into the store at once, so an interrupted fetch
//! keeps what it got and a rerun continues after the last stored bar).

use super::ctx::Ctx;
use super::fetch_alpaca::fetch_alpaca;
use super::rundir::DataRef;
use super::{Event, JobSummary};
use crate::config::DataSource;
use crate::data::load::{data_days, generate_synthetic};
use crate::data::{budget, SeriesInfo, Store};
use crate::market::{AssetClass, Symbol};
use anyhow::{bail, Result};
use chrono::Utc;

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
        DataSource::Alpaca => fetch_alpaca(ctx, &wanted, Utc::now()),
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
        DataSource::Alpaca => fetch_alpaca(&sub, &names, Utc::now()),
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
pub(super) fn fetched(info: &SeriesInfo) -> Event {
    Event::SymbolFetched {
        symbol: info.symbol.clone(),
        timeframe: info.timeframe,
        bars: info.bars,
        first: info.first,
        last: info.last,
        source: info.source.clone(),
    }
}

pub(super) fn record(ctx: &Ctx, info: &SeriesInfo) -> Result<()> {
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

pub(super) fn outcome(
    ctx: &Ctx,
    stored: &[String],
    failed: &[String],
    what: &str,
) -> Result<String> {
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
pub(super) fn check_fits(ctx: &Ctx, symbols: &[Symbol]) -> Result<()> {
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
