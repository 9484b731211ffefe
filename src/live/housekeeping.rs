//! The daemon's tick: commands from the run directory, a latched flatten-all, orders silent
//! too long, the market clock, the feed watchdog, positions against the books, live bars the
//! wall clock closes, and the periodic snapshot.

use super::daemon::Daemon;
use super::output::Alert;
use super::view::Link;
use crate::broker::Broker;
use crate::market::Bar;
use anyhow::Result;
use chrono::Duration;

impl<B: Broker> Daemon<'_, B> {
    pub(super) async fn housekeeping(&mut self) -> Result<()> {
        let (cmds, bad) = super::commands::take(&self.dir);
        for b in bad {
            self.out.warn(b);
        }
        for env in cmds {
            self.on_command(env).await?;
        }
        if self
            .state
            .flatten
            .as_ref()
            .is_some_and(|f| f.done.is_none())
        {
            self.flatten().await?;
        }
        self.exec.chase_silent().await;
        let now = self.now();
        self.mirror
            .refresh_market(&self.exec.broker, self.out, now)
            .await;
        if let Some(c) = &self.mirror.market {
            self.health.market_open = Some(c.is_open);
            self.health.next_open = Some(c.next_open);
        }
        self.watchdog();
        self.poll_positions().await;
        self.close_late_bars().await?;
        if super::clock::due(self.last_snapshot, now, Duration::seconds(5)) {
            self.emit_snapshot();
        }
        Ok(())
    }

    /// Positions, re-read while nothing of ours is in flight (a fill not heard of yet would
    /// look like a mismatch): someone else's holdings, and a book that no longer matches.
    async fn poll_positions(&mut self) {
        let now = self.now();
        let every = self.settings.positions_every();
        if !self.exec.inflight.is_empty()
            || !super::clock::due(self.mirror.positions_at, now, every)
        {
            return;
        }
        if self
            .mirror
            .refresh_positions(&self.exec.broker, self.out, now)
            .await
        {
            self.external = self.check_positions();
        }
    }

    /// A live bar whose last minute had no trades closes by the wall clock — only when the
    /// feed is real-time (a replayed or accelerated feed closes bars by its data alone).
    async fn close_late_bars(&mut self) -> Result<()> {
        let now = self.now();
        let real_time = self
            .health
            .last_bar
            .is_some_and(|t| now - t < Duration::minutes(3));
        if !real_time {
            return Ok(());
        }
        let grace = self.settings.late_bar_grace;
        let due: Vec<(String, Bar)> = self
            .builders
            .iter_mut()
            .filter_map(|(k, b)| b.close_if_due(now - grace).map(|bar| (k.clone(), bar)))
            .collect();
        for (k, bar) in due {
            if let Some(sym) = self.strategy.name_of(&k) {
                self.on_model_bar(&sym, bar).await?;
            }
        }
        // A member that never reports a bar time is masked once the feed is well past it.
        self.decide_pending(Some(now - grace * 3)).await
    }

    /// Halts entries when the market is open (per the broker's clock; crypto is always open)
    /// and no bar has arrived for two bar periods. A replay decides its own pace.
    fn watchdog(&mut self) {
        let Some(period) = self.strategy.bar_period() else {
            return;
        };
        if matches!(self.health.data_stream, Link::Unused) {
            return;
        }
        let open = self.health.market_open.unwrap_or(false) || self.strategy.has_crypto();
        let stale = super::latches::watchdog(self.now(), self.health.last_bar_seen, open, period);
        if let (Some(why), None) = (&stale, &self.stale_feed) {
            self.out
                .error(format!("feed watchdog: {why}; entries halted"));
            self.out.alert(&Alert::StaleFeed {
                detail: why.clone(),
            });
        }
        self.stale_feed = stale;
    }

    /// Flatten-all (latched): entries are already blocked by the latch.
    pub(super) async fn flatten(&mut self) -> Result<()> {
        self.out
            .warn("flatten-all: cancelling every open order and closing every position".into());
        let models: Vec<String> = self
            .strategy
            .symbols()
            .into_iter()
            .map(|s| s.name)
            .chain(self.state.models.keys().cloned())
            .chain(
                self.state
                    .portfolio
                    .iter()
                    .flat_map(|p| p.targets.keys().cloned()),
            )
            .collect();
        let done = self.exec.flatten(&mut self.mirror, &models).await;
        self.state.adopted.extend(done.adopted.iter().cloned());
        for m in self.state.models.values_mut() {
            m.level = 0.0;
        }
        for s in self.strategy.symbols() {
            self.rebuild_book(&s.name);
        }
        self.external = self.check_positions();
        if let Some(fl) = self.state.flatten.as_mut() {
            fl.done = Some(self.clock.now());
            fl.ok = done.ok;
            fl.rows = done.rows.clone();
        }
        self.save_state()?;
        self.needs_resync = true;
        if done.ok {
            self.out
                .warn("flatten-all done: no open orders, no positions".into());
        } else {
            self.out.error(format!(
                "flatten-all finished with problems: {}",
                done.rows.join("; ")
            ));
        }
        self.emit_snapshot();
        Ok(())
    }

    /// Flatten-all from outside a running loop (`quantdeck paper flatten` with no daemon): the
    /// latch is already set in the state; returns the outcome line.
    pub async fn flatten_once(&mut self) -> Result<String> {
        // The session's own orders first, so the closing orders land on the right books.
        for _ in 0..5 {
            if !self.needs_resync {
                break;
            }
            self.reconcile().await?;
        }
        self.flatten().await?;
        Ok(match &self.state.flatten {
            Some(f) if f.ok => "flatten-all done: no open orders, no positions (latched until `quantdeck paper clear`)".into(),
            Some(f) => format!("flatten-all finished with problems: {}", f.rows.join("; ")),
            None => "flatten-all: nothing recorded".into(),
        })
    }
}
