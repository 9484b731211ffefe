"""Generates tests/data/talib_reference.csv: TA-Lib's values for the indicators quantdeck computes,
on a deterministic OHLCV series defined here. Run once (needs `pip install TA-Lib numpy`); the Rust
test `tests/features_talib.rs` reads only the committed CSV, so CI needs no TA-Lib.

    python3 tests/data/make_talib_reference.py > tests/data/talib_reference.csv
"""

import sys

import numpy as np
import talib

N = 400
rng = np.random.default_rng(20240601)
# A random walk with a volatility regime change and a trend, so every indicator moves.
vol = np.where(np.arange(N) < 200, 0.004, 0.009)
drift = np.where((np.arange(N) > 120) & (np.arange(N) < 220), 0.0012, -0.0002)
logret = drift + vol * rng.standard_normal(N)
close = 50.0 * np.exp(np.cumsum(logret))
open_ = np.concatenate([[50.0], close[:-1]]) * np.exp(0.001 * rng.standard_normal(N))
wick_hi = np.abs(rng.standard_normal(N)) * vol * close
wick_lo = np.abs(rng.standard_normal(N)) * vol * close
high = np.maximum(open_, close) + wick_hi
low = np.minimum(open_, close) - wick_lo
volume = np.round(1000 + 500 * rng.random(N))

cols = {
    "open": open_,
    "high": high,
    "low": low,
    "close": close,
    "volume": volume,
    "rsi_14": talib.RSI(close, 14),
    "atr_14": talib.ATR(high, low, close, 14),
    "adx_14": talib.ADX(high, low, close, 14),
    "plus_di_14": talib.PLUS_DI(high, low, close, 14),
    "minus_di_14": talib.MINUS_DI(high, low, close, 14),
    "cci_20": talib.CCI(high, low, close, 20),
    "willr_14": talib.WILLR(high, low, close, 14),
    "roc_10": talib.ROC(close, 10),
}
macd, signal, hist = talib.MACD(close, 12, 26, 9)
cols.update({"macd": macd, "macd_signal": signal, "macd_hist": hist})
k, d = talib.STOCH(high, low, close, 14, 3, 0, 3, 0)
cols.update({"stoch_k": k, "stoch_d": d})
up, mid, lo = talib.BBANDS(close, 20, 2.0, 2.0, 0)
cols.update({"bb_upper": up, "bb_middle": mid, "bb_lower": lo})

out = sys.stdout
out.write("i," + ",".join(cols) + "\n")
for i in range(N):
    vals = ["" if np.isnan(c[i]) else repr(float(c[i])) for c in cols.values()]
    out.write(f"{i}," + ",".join(vals) + "\n")
