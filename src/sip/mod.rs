//! SIP messages (RFC 3261 §7, §18.3, §19, §20, §25): framing, a zero-copy
//! message index, typed header accessors parsed on demand, locally
//! generated responses and the edit list that builds forwarded messages.
//!
//! Sans-IO: no sockets, no clock. Nothing here panics on network input.

pub mod addr;
pub mod edit;
pub mod error;
pub mod framing;
pub mod header;
pub mod lex;
pub mod list;
pub mod message;
pub mod method;
pub mod response;
pub mod uri;
mod validate;
mod values;
pub mod via;

pub use addr::{Contact, NameAddr};
pub use edit::Edits;
pub use error::Error;
pub use framing::{frame_stream, keepalive_len, Framing, Limits, Status};
pub use header::HeaderName;
pub use lex::{Param, Params};
pub use message::{CSeq, Header, HeaderField, Message, ParseError, Span};
pub use method::Method;
pub use via::{Transport, Via};
