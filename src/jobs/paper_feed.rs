//! Where a paper session on Alpaca gets its bars: the data streams (stocks and crypto apart) or
//! REST polling, with a catch-up over REST first (`live::feed::AlpacaFeed` does the switching).

use super::ctx::Ctx;
use crate::config::BarSource;
use crate::data::alpaca::stream::{spawn_bar_stream, BarFeed, DataStreamSettings, StockFeed};
use crate::data::alpaca::{ClientSettings, DataClient};
use crate::live::feed::AlpacaFeed;
use crate::market::{AssetClass, Symbol};
use anyhow::Result;
use chrono::Utc;
use std::sync::Arc;

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
