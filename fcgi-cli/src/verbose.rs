//! `-v` / `-vv`: the records of a request on standard error, curl-style, and with
//! `RUST_LOG` the library's other events.
//!
//! The lines come from the `tracing` events the core emits where it encodes and
//! decodes records (`fcgi_proto::trace`, target `fcgi::wire`) and from the blocking
//! client's connection events (`fcgi::conn`); this module only formats them. Without
//! `-v` and `RUST_LOG` no subscriber is installed and the events cost next to nothing.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::Event;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the subscriber: `verbose` 1 shows the records, 2 also the params' pairs;
/// `RUST_LOG` (`fcgi=debug`, `fcgi_blocking=trace`, ... as `tracing_subscriber`'s
/// `Targets` reads it) adds the library's other events in `tracing`'s own format.
pub(crate) fn init(verbose: u8) {
    let rust_log = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| v.parse::<Targets>().ok());
    if verbose == 0 && rust_log.is_none() {
        return;
    }
    let wire = (verbose > 0).then(|| {
        let level = if verbose > 1 {
            LevelFilter::TRACE
        } else {
            LevelFilter::DEBUG
        };
        WireLines.with_filter(
            Targets::new()
                .with_target("fcgi::wire", level)
                .with_target("fcgi::conn", LevelFilter::DEBUG),
        )
    });
    let library = rust_log.map(|targets| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .without_time()
            .with_filter(targets)
    });
    // Fails only when a subscriber is already set, which nothing here does before.
    let _ = tracing_subscriber::registry()
        .with(wire)
        .with(library)
        .try_init();
}

/// Formats record and connection events as lines.
struct WireLines;

impl<S: tracing::Subscriber> Layer<S> for WireLines {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let Some(line) = fields.line(event.metadata().target()) {
            crate::say_raw(&line);
        }
    }
}

/// The fields of one event.
#[derive(Default)]
struct Fields {
    message: String,
    dir: String,
    record: String,
    id: Option<u64>,
    len: Option<u64>,
    role: String,
    keep_conn: bool,
    pairs: Option<u64>,
    app_status: Option<u64>,
    protocol_status: String,
    name: Option<String>,
    value: String,
    address: String,
}

impl Fields {
    /// The line: `> BEGIN_REQUEST id=1 role=RESPONDER keep-conn`, `< STDOUT id=1 120
    /// bytes`, `* connected to unix:/run/php.sock`, ...
    fn line(&self, target: &str) -> Option<String> {
        if target == "fcgi::conn" {
            return Some(if self.address.is_empty() {
                format!("* {}", self.message)
            } else {
                format!("* {} to {}", self.message, self.address)
            });
        }
        if let Some(name) = &self.name {
            return Some(format!(">   {name}={}", self.value));
        }
        if self.record.is_empty() {
            return None;
        }
        let id = self.id.unwrap_or(0);
        let len = self.len.unwrap_or(0);
        let mut line = format!("{} {} id={id}", self.dir, self.record);
        match self.record.as_str() {
            "BEGIN_REQUEST" => {
                line.push_str(&format!(" role={}", self.role));
                if self.keep_conn {
                    line.push_str(" keep-conn");
                }
            }
            "END_REQUEST" => line.push_str(&format!(
                " app={} {}",
                self.app_status.unwrap_or(0),
                self.protocol_status
            )),
            _ => {
                if let Some(pairs) = self.pairs {
                    line.push_str(&format!(" {pairs} pairs,"));
                }
                line.push_str(&format!(" {len} bytes"));
                let is_stream =
                    ["PARAMS", "STDIN", "STDOUT", "STDERR", "DATA"].contains(&self.record.as_str());
                if len == 0 && is_stream {
                    line.push_str(" (end)");
                }
            }
        }
        Some(line)
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "dir" => self.dir = value.to_owned(),
            "record" => self.record = value.to_owned(),
            "role" => self.role = value.to_owned(),
            "name" => self.name = Some(value.to_owned()),
            "value" => self.value = value.to_owned(),
            "address" => self.address = value.to_owned(),
            "message" => self.message = value.to_owned(),
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "id" => self.id = Some(value),
            "len" => self.len = Some(value),
            "pairs" => self.pairs = Some(value),
            "app_status" => self.app_status = Some(value),
            _ => {}
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "keep_conn" {
            self.keep_conn = value;
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // Display values (`%x`) arrive here, formatted without quotes.
        let text = format!("{value:?}");
        match field.name() {
            "record" => self.record = text,
            "protocol_status" => self.protocol_status = text,
            "name" => self.name = Some(text),
            "value" => self.value = text,
            "address" => self.address = text,
            "message" => self.message = text,
            _ => {}
        }
    }
}
