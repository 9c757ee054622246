//! Sysward's wire protocol, version 1: the types the agent sends and the server answers
//! with, their gzip framing, and the limits the server enforces before it trusts a body.
//!
//! A batch travels as `POST /api/v1/ingest` with `Content-Encoding: gzip` and a JSON body
//! ([`Batch`]). The server inflates at most [`Limits::max_decompressed_bytes`] and stops
//! there, so a gzip bomb costs it that much and no more ([`decode_batch`]). A batch is
//! identified by `(agent_id, boot_id, seq)`; the server stores each identity once and acks
//! repeats again, so the agent may resend freely.

mod batch;
mod codec;
mod enroll;
mod limits;
mod outgoing_json;
mod token;
pub mod units;

pub use batch::{
    AckResponse, Batch, ErrorResponse, Event, HostInfo, OutgoingBatch, OutgoingSeries, Points,
    Series, SeriesKind, VERSION,
};
pub use codec::{BatchEncoder, DecodeError, decode_batch, encode_batch, inflate_limited};
pub use enroll::{EnrollRequest, EnrollResponse, EnrollStatus, RenewRequest, RenewResponse};
pub use limits::Limits;
pub use token::{JoinToken, TokenError};
