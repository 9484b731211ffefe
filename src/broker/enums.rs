//! Alpaca's string enums, all **open**: the documented values plus `Other(String)`, so a value
//! Alpaca adds later is kept as sent and never fails a whole order list or stream.

use super::wire::open_enum;

open_enum! {
    /// An order's status, as documented by Alpaca.
    OrderStatus {
        New = "new",
        PartiallyFilled = "partially_filled",
        Filled = "filled",
        DoneForDay = "done_for_day",
        Canceled = "canceled",
        Expired = "expired",
        Replaced = "replaced",
        PendingCancel = "pending_cancel",
        PendingReplace = "pending_replace",
        PendingReview = "pending_review",
        Accepted = "accepted",
        PendingNew = "pending_new",
        AcceptedForBidding = "accepted_for_bidding",
        Stopped = "stopped",
        Rejected = "rejected",
        Suspended = "suspended",
        Calculated = "calculated",
        Held = "held",
    }
}

impl OrderStatus {
    /// The order will change no more: `filled`, `canceled`, `expired`, `rejected`, or `replaced`
    /// (a replaced order lives on under a new id). Not terminal: `done_for_day` (a GTC order
    /// resumes the next session), `calculated` (done for the day, settlement pending), `stopped`
    /// and `suspended` (may still execute), and any unknown status (look it up, never assume).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            OrderStatus::Filled
                | OrderStatus::Canceled
                | OrderStatus::Expired
                | OrderStatus::Rejected
                | OrderStatus::Replaced
        )
    }

    /// The order may still fill or change: everything that is not terminal.
    pub fn is_open(&self) -> bool {
        !self.is_terminal()
    }
}

open_enum! {
    /// The event of a trade update.
    TradeEvent {
        New = "new",
        Fill = "fill",
        PartialFill = "partial_fill",
        Canceled = "canceled",
        Expired = "expired",
        DoneForDay = "done_for_day",
        Replaced = "replaced",
        Rejected = "rejected",
        PendingNew = "pending_new",
        Accepted = "accepted",
        Stopped = "stopped",
        PendingCancel = "pending_cancel",
        PendingReplace = "pending_replace",
        Calculated = "calculated",
        Suspended = "suspended",
        OrderReplaceRejected = "order_replace_rejected",
        OrderCancelRejected = "order_cancel_rejected",
        Restated = "restated",
    }
}

impl TradeEvent {
    /// `fill` or `partial_fill`: the update carries `price`, `qty` and `position_qty`.
    pub fn is_fill(&self) -> bool {
        matches!(self, TradeEvent::Fill | TradeEvent::PartialFill)
    }

    /// The order ends with this event.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            TradeEvent::Fill
                | TradeEvent::Canceled
                | TradeEvent::Expired
                | TradeEvent::Rejected
                | TradeEvent::Replaced
        )
    }
}

open_enum! {
    Side { Buy = "buy", Sell = "sell" }
}

open_enum! {
    OrderType {
        Market = "market",
        Limit = "limit",
        Stop = "stop",
        StopLimit = "stop_limit",
        TrailingStop = "trailing_stop",
    }
}

open_enum! {
    TimeInForce {
        Day = "day",
        Gtc = "gtc",
        Opg = "opg",
        Cls = "cls",
        Ioc = "ioc",
        Fok = "fok",
    }
}

open_enum! {
    /// Alpaca's asset class names.
    BrokerAssetClass {
        UsEquity = "us_equity",
        UsOption = "us_option",
        Crypto = "crypto",
        CryptoPerp = "crypto_perp",
    }
}

impl Default for BrokerAssetClass {
    fn default() -> Self {
        BrokerAssetClass::Other(String::new())
    }
}

impl BrokerAssetClass {
    /// quantdeck's class, for the classes it trades.
    pub fn to_market(&self) -> Option<crate::market::AssetClass> {
        match self {
            BrokerAssetClass::UsEquity => Some(crate::market::AssetClass::Equity),
            BrokerAssetClass::Crypto => Some(crate::market::AssetClass::Crypto),
            _ => None,
        }
    }
}

open_enum! {
    PositionSide { Long = "long", Short = "short" }
}

impl Default for Side {
    fn default() -> Self {
        Side::Other(String::new())
    }
}

impl Default for OrderType {
    fn default() -> Self {
        OrderType::Other(String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_status_and_event_round_trip() {
        let s: OrderStatus = serde_json::from_str(r#""pending_teleport""#).unwrap();
        assert_eq!(s, OrderStatus::Other("pending_teleport".into()));
        assert_eq!(serde_json::to_string(&s).unwrap(), r#""pending_teleport""#);
        assert!(s.is_open() && !s.is_terminal(), "unknown means: look it up");
        let e: TradeEvent = serde_json::from_str(r#""margin_call""#).unwrap();
        assert_eq!(e, TradeEvent::Other("margin_call".into()));
        assert_eq!(e.to_string(), "margin_call");
        for known in ["new", "partial_fill", "order_cancel_rejected", "restated"] {
            assert!(!matches!(TradeEvent::parse(known), TradeEvent::Other(_)));
            assert_eq!(TradeEvent::parse(known).as_str(), known);
        }
    }

    #[test]
    fn terminal_statuses() {
        for s in ["filled", "canceled", "expired", "rejected", "replaced"] {
            assert!(OrderStatus::parse(s).is_terminal(), "{s}");
        }
        for s in [
            "new",
            "partially_filled",
            "done_for_day",
            "calculated",
            "stopped",
            "held",
            "pending_cancel",
        ] {
            assert!(OrderStatus::parse(s).is_open(), "{s}");
        }
        assert!(TradeEvent::Fill.is_terminal() && TradeEvent::Fill.is_fill());
        assert!(!TradeEvent::PartialFill.is_terminal() && TradeEvent::PartialFill.is_fill());
    }
}
