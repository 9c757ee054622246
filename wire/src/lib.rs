//! Parsers of text that comes from outside the host's kernel: what operators write
//! (`host:port`), what HTTP servers answer, what exporters and scripts print in the
//! Prometheus text format.
//!
//! They sit below both `sysward-checks` and `sysward-collectors`: checks use them today,
//! and collectors of services (a web server's status page, an exporter scraped over
//! HTTP) will use the same parsers. None of them panics on any input; each is
//! property-tested on arbitrary bytes.

#![warn(missing_docs)]

pub mod addr;
pub mod http;
pub mod textfmt;
