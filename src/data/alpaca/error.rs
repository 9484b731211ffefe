use thiserror::Error;

/// Failures the user must act on; transient ones are retried inside the client.
#[derive(Debug, Error)]
pub enum AlpacaError {
    #[error(
        "Alpaca rejected the keys (401) at {host} for key id {key_id}: check the keys, and that paper keys go to the paper host and live keys to the live host"
    )]
    Unauthorized { host: String, key_id: String },
    #[error("Alpaca refused the request (403) at {host}: {message}{hint}")]
    Forbidden {
        host: String,
        message: String,
        hint: String,
    },
    #[error("Alpaca rejected the request (HTTP {status}) — parameter `{param}`: {message}")]
    BadRequest {
        status: u16,
        param: String,
        message: String,
    },
    #[error("unknown symbol {symbol}: {message}")]
    UnknownSymbol { symbol: String, message: String },
    #[error("{what} failed after {attempts} attempts (retry budget spent); last error: {last}")]
    RetriesExhausted {
        what: String,
        attempts: u32,
        last: String,
    },
    #[error("HTTP {status} from {host}: {message}")]
    Http {
        status: u16,
        host: String,
        message: String,
    },
}
