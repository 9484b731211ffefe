//! Fetching from Alpaca: plan the request streams the store lacks, run them as tokio tasks within
//! the shared rate limit, merge each page into the store as it arrives (an interrupted fetch keeps
//! what it got), then say per symbol what was stored.

use super::ctx::Ctx;
use super::fetch::{check_fits, fetched, outcome, record, NO_KEYS};
use super::Event;
use crate::data::alpaca::{load_credentials, AlpacaError, ClientSettings, DataClient};
use crate::data::load::data_days;
use crate::data::{plan, Store};
use crate::market::{AssetClass, Bar, Symbol, Timeframe};
use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, TimeZone, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// One request stream: symbols sharing a range (a multi-symbol request) or one symbol.
#[derive(Debug, Clone)]
struct Task {
    symbols: Vec<Symbol>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

enum Msg {
    Page(BTreeMap<String, Vec<Bar>>),
    /// A task's end: its result, and whether to retry its symbols one by one (a multi-symbol
    /// request refused for one bad symbol).
    Done(Task, Result<(), String>, bool),
}

pub(super) fn fetch_alpaca(ctx: &Ctx, wanted: &[String], now: DateTime<Utc>) -> Result<String> {
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
        .min(now);
    if end <= start {
        bail!("data.end must be after data.start");
    }
    let store = Store::new(&ctx.paths.data);
    let tasks = plan_tasks(ctx, &store, &symbols, start, end)?;
    ctx.sink.info(format!(
        "Alpaca {tf}: {} request stream(s) for {} symbol(s), feed {}",
        tasks.len(),
        symbols.len(),
        cfg.data.feed
    ));
    let client = DataClient::new(ClientSettings::from_config(&cfg.data), creds)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut run = Collect {
        ctx,
        store: &store,
        symbols: &symbols,
        tf,
        total: tasks.len(),
        done: 0,
        open: tasks.len(),
        failed: BTreeMap::new(),
        fatal: None,
        got: BTreeMap::new(),
    };
    rt.block_on(run.download(Arc::new(client), tasks));
    if let Some(e) = run.fatal {
        return Err(e);
    }
    report(ctx, &store, &symbols, &run.failed)
}

/// Only what the store lacks — before its first bar, after its last, and the holes between (see
/// `data::plan`); symbols with nothing stored go in multi-symbol requests of up to 20.
fn plan_tasks(
    ctx: &Ctx,
    store: &Store,
    symbols: &[Symbol],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<Task>> {
    let tf = ctx.cfg.data.timeframe;
    let mut full: BTreeMap<AssetClass, Vec<Symbol>> = BTreeMap::new();
    let mut tasks = Vec::new();
    for sym in symbols {
        // Only Alpaca's own bars count as fetched: another source's go aside first.
        if let Some(note) = store.set_aside_other_source(sym, tf, "alpaca")? {
            ctx.sink.warn(note);
        }
        let have = store.read_or_quarantine(sym, tf).unwrap_or_else(|e| {
            ctx.sink
                .warn(format!("{sym}: cached file unreadable, refetching: {e:#}"));
            None
        });
        let Some(bars) = have.filter(|b| !b.is_empty()) else {
            full.entry(sym.class).or_default().push(sym.clone());
            continue;
        };
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
    for group in full.into_values() {
        for chunk in group.chunks(20) {
            tasks.push(Task {
                symbols: chunk.to_vec(),
                start,
                end,
            });
        }
    }
    Ok(tasks)
}

/// Starts one request stream: it waits for a permit, sends its pages as they come (blocking only
/// briefly when the channel is full) and then its end.
fn spawn(
    set: &mut JoinSet<()>,
    client: &Arc<DataClient>,
    permits: &Arc<tokio::sync::Semaphore>,
    tx: &mpsc::Sender<Msg>,
    tf: Timeframe,
    task: Task,
) {
    let (client, permits, tx) = (client.clone(), permits.clone(), tx.clone());
    set.spawn(async move {
        let Ok(_permit) = permits.acquire_owned().await else {
            return;
        };
        let page_tx = tx.clone();
        let res = client
            .fetch_bars(&task.symbols, tf, task.start, task.end, |page| {
                page_tx.try_send(Msg::Page(page)).or_else(|e| match e {
                    mpsc::error::TrySendError::Full(m) => {
                        tokio::task::block_in_place(|| page_tx.blocking_send(m))
                            .map_err(|_| anyhow!("fetch job stopped"))
                    }
                    mpsc::error::TrySendError::Closed(_) => Err(anyhow!("fetch job stopped")),
                })
            })
            .await;
        let (res, split) = match res {
            Ok(_) => (Ok(()), false),
            Err(e) => {
                let is_symbol = e.downcast_ref::<AlpacaError>().is_some_and(|a| {
                    matches!(a, AlpacaError::UnknownSymbol { .. })
                        || matches!(a, AlpacaError::BadRequest { param, .. } if param == "symbols")
                });
                (Err(format!("{e:#}")), is_symbol && task.symbols.len() > 1)
            }
        };
        let _ = tx.send(Msg::Done(task, res, split)).await;
    });
}

/// The download's running state: what each page and each finished stream changes.
struct Collect<'a> {
    ctx: &'a Ctx<'a>,
    store: &'a Store,
    symbols: &'a [Symbol],
    tf: Timeframe,
    total: usize,
    done: usize,
    /// Streams started and not yet ended.
    open: usize,
    failed: BTreeMap<String, String>,
    /// What stops the whole fetch: a crashed task, a store that cannot write, refused keys.
    fatal: Option<anyhow::Error>,
    got: BTreeMap<String, usize>,
}

impl Collect<'_> {
    async fn download(&mut self, client: Arc<DataClient>, tasks: Vec<Task>) {
        let permits = Arc::new(tokio::sync::Semaphore::new(
            self.ctx.cfg.data.concurrency.max(1),
        ));
        let (tx, mut rx) = mpsc::channel::<Msg>(16);
        let mut set = JoinSet::new();
        for t in tasks {
            spawn(&mut set, &client, &permits, &tx, self.tf, t);
        }
        while self.open > 0 && self.fatal.is_none() && !self.ctx.cancel.is_cancelled() {
            let msg = tokio::select! {
                m = rx.recv() => m,
                // A task that panicked never sends its Done: fail instead of waiting forever.
                Some(Err(e)) = set.join_next(), if !set.is_empty() => {
                    if e.is_panic() {
                        self.fatal = Some(anyhow!("a fetch task crashed: {e}"));
                    }
                    continue;
                }
                _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => continue,
            };
            match msg {
                None => break,
                Some(Msg::Page(page)) => self.on_page(page),
                Some(Msg::Done(task, res, split)) => {
                    for retry in self.on_done(task, res, split) {
                        spawn(&mut set, &client, &permits, &tx, self.tf, retry);
                    }
                }
            }
        }
        set.abort_all();
    }

    /// Merges a page into the store at once, with live per-symbol progress.
    fn on_page(&mut self, page: BTreeMap<String, Vec<Bar>>) {
        for (name, bars) in page {
            let sym = self
                .symbols
                .iter()
                .find(|s| s.name == name)
                .cloned()
                .unwrap_or_else(|| Symbol::parse(&name));
            let info = match self.store.merge(&sym, self.tf, &bars, "alpaca") {
                Ok(i) => i,
                Err(e) => {
                    self.fatal = Some(e.context(format!("storing {name}")));
                    return;
                }
            };
            *self.got.entry(name.clone()).or_default() += bars.len();
            self.ctx.sink.emit(fetched(&info));
            self.progress(format!("{name}: +{} bars", self.got[&name]));
        }
    }

    /// Records a stream's end; returns the streams to start instead (one per symbol of a group
    /// refused for one bad symbol).
    fn on_done(&mut self, task: Task, res: Result<(), String>, split: bool) -> Vec<Task> {
        self.open -= 1;
        self.done += 1;
        let mut retries = Vec::new();
        match res {
            Ok(()) => {}
            Err(_) if split => {
                for s in task.symbols {
                    self.open += 1;
                    retries.push(Task {
                        symbols: vec![s],
                        start: task.start,
                        end: task.end,
                    });
                }
            }
            Err(e) => {
                let names: Vec<_> = task.symbols.iter().map(|s| s.name.clone()).collect();
                for n in &names {
                    self.failed.insert(n.clone(), e.clone());
                }
                self.ctx.sink.error(format!("{}: {e}", names.join(",")));
                if e.contains("(401)") || e.contains("(403)") {
                    self.fatal = Some(anyhow!(e));
                }
            }
        }
        self.progress("requests".into());
        retries
    }

    fn progress(&self, message: String) {
        self.ctx.sink.emit(Event::Progress {
            done: self.done as u64,
            total: self.total as u64,
            message,
        });
    }
}

/// Per symbol: stored (and recorded in the run), failed with its error, or empty.
fn report(
    ctx: &Ctx,
    store: &Store,
    symbols: &[Symbol],
    failed: &BTreeMap<String, String>,
) -> Result<String> {
    let (cfg, tf) = (ctx.cfg, ctx.cfg.data.timeframe);
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
                let msg = format!(
                    "{sym}: Alpaca returned no {tf} bars in {} → {} (unknown symbol, or no trading in that range)",
                    cfg.data.start, cfg.data.end
                );
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
