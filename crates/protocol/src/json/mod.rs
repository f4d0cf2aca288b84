//! JSON reading beyond serde: the schema-directed scanner, the decoder's and the
//! checking pass's fast path.
//!
//! Two readers of one grammar: [`scanner`], a byte-level scan driven by the models'
//! field tables ([`schema`]), settles ordinary payloads; anything it declines is
//! decoded in full by serde (the models' `Deserialize`), for the result or for its
//! exact error. The scanner accepts a strict subset of what serde accepts, and builds
//! the same value; the tests and the `payload_decode` fuzz target compare the two on
//! every input they make.
//!
//! The scanner knows no model: the models implement [`schema::Record`] and name their
//! fields in [`schema::FieldSpec`] tables, so `model.rs` depends on this module and not
//! the other way round.

pub(crate) mod bytes;
pub(crate) mod scanner;
pub(crate) mod schema;
pub(crate) mod unique;

#[cfg(test)]
pub(crate) use scanner::FastOutline;
pub(crate) use scanner::{OutlineFields, Scanner, decode, scan};
pub(crate) use schema::{FieldSpec, Kind, Record, fits_mask, index_of};
