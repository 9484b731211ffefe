//! Hourly context: the base bars grouped into clock hours (New York hours inside one session for
//! equities, so the 09:30–10:00 partial hour is its own bucket and no hour spans an overnight gap,
//! a holiday or a half-day close; UTC hours for crypto). Each bar sees the last hour that ended
//! before the bar began, so the values never peek into the bar's own hour and need no knowledge
//! of the bar length: any timeframe works (5Min, 15Min, 30Min, 1Hour).

use super::clock::Clock;
use super::series::Squash;
use crate::market::Bar;

#[derive(Clone, Copy)]
struct Hour {
    hour_id: i64,
    session_id: i64,
    open: f64,
    close: f64,
    high: f64,
    low: f64,
    n: f64,
    sum_r: f64,
    sum_r2: f64,
    /// Up bars minus down bars.
    net_up: f64,
}

fn ln_ratio(a: f64, b: f64) -> f64 {
    super::series::safe_ln_ratio(a, b)
}

/// Buckets in time order, and each bar's bucket.
fn buckets(bars: &[Bar], clock: &Clock) -> (Vec<Hour>, Vec<usize>) {
    let mut hours: Vec<Hour> = Vec::new();
    let mut of_bar = Vec::with_capacity(bars.len());
    for (t, b) in bars.iter().enumerate() {
        let (hid, sid) = (clock.hour_id[t], clock.session_id[t]);
        // A bar's return is close to close inside a session; the session's first bar uses its
        // own open, so no return spans an overnight gap.
        let r = if t > 0 && clock.session_id[t - 1] == sid {
            ln_ratio(b.close, bars[t - 1].close)
        } else {
            ln_ratio(b.close, b.open)
        };
        let same = hours
            .last()
            .is_some_and(|h| h.hour_id == hid && h.session_id == sid);
        if !same {
            hours.push(Hour {
                hour_id: hid,
                session_id: sid,
                open: b.open,
                close: b.close,
                high: b.high,
                low: b.low,
                n: 0.0,
                sum_r: 0.0,
                sum_r2: 0.0,
                net_up: 0.0,
            });
        }
        let Some(h) = hours.last_mut() else { continue };
        h.close = b.close;
        h.high = h.high.max(b.high);
        h.low = h.low.min(b.low);
        h.n += 1.0;
        h.sum_r += r;
        h.sum_r2 += r * r;
        h.net_up += if r > 0.0 {
            1.0
        } else if r < 0.0 {
            -1.0
        } else {
            0.0
        };
        of_bar.push(hours.len() - 1);
    }
    (hours, of_bar)
}

fn simple_return(h: &Hour) -> f64 {
    if h.open > 0.0 {
        (h.close - h.open) / h.open
    } else {
        0.0
    }
}

/// The hourly block, 7 columns from `col`: return, vol, trend, momentum, rsi, range,
/// pos_in_hour. Rows with no complete hour before them get zeros (pos_in_hour is always set).
pub fn fill(bars: &[Bar], clock: &Clock, out: &mut [f32], nf: usize, col: usize, from: usize) {
    let (hours, of_bar) = buckets(bars, clock);
    for t in from..bars.len() {
        let row = &mut out[t * nf + col..t * nf + col + 7];
        row[6] = (clock.minute_in_hour[t] as f64 / 60.0) as f32;
        let cur = of_bar[t];
        if cur == 0 {
            continue;
        }
        let last = &hours[cur - 1];
        // Up to four complete hours ending with `last`, inside its session.
        let mut first = cur - 1;
        while first > 0 {
            let h = &hours[first - 1];
            if h.session_id != last.session_id || h.hour_id < last.hour_id - 3 {
                break;
            }
            first -= 1;
        }
        let span = &hours[first..cur];
        let ret = simple_return(last);
        let var = if last.n > 0.0 {
            (last.sum_r2 / last.n - (last.sum_r / last.n).powi(2)).max(0.0)
        } else {
            0.0
        };
        let prev_ret = if cur >= 2 && hours[cur - 2].session_id == last.session_id {
            simple_return(&hours[cur - 2])
        } else {
            0.0
        };
        let (n, net): (f64, f64) = span
            .iter()
            .fold((0.0, 0.0), |(n, u), h| (n + h.n, u + h.net_up));
        row[0] = (100.0 * ret).squash() as f32;
        row[1] = (100.0 * var.sqrt()).squash() as f32;
        row[2] = (50.0 * ln_ratio(last.close, span[0].open)).squash() as f32;
        row[3] = (100.0 * (ret - prev_ret)).squash() as f32;
        row[4] = if n > 0.0 { (net / n) as f32 } else { 0.0 };
        row[5] = if last.open > 0.0 {
            (50.0 * (last.high - last.low) / last.open).squash() as f32
        } else {
            0.0
        };
    }
}
