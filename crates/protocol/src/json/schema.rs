//! The schema the scanner reads by: each model's fields as a table, and the trait
//! through which the scanner fills a model without knowing it.
//!
//! The models declare their tables (the `model!` macro in `model.rs`); the scanner
//! only sees [`FieldSpec`]s and [`Record`]s, so neither depends on the other.

use serde_json::Value;

use super::scanner::Scanner;

/// What a field of a model holds, as far as the fast path needs to know.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    /// An `i64`.
    Int,
    /// A `bool`.
    Bool,
    /// A `String` or one of the string enums.
    Str,
    /// A `BTreeMap<String, String>`.
    StrMap,
    /// A `Vec<String>`.
    StrList,
    /// An `Option<Box<T>>` of a model, with the model's fields.
    Obj(&'static [FieldSpec]),
    /// A `Vec<T>` of a model, with the model's fields.
    ObjList(&'static [FieldSpec]),
}

/// One field of a model: its wire name, the alias accepted on input, and its kind.
#[derive(Debug)]
pub(crate) struct FieldSpec {
    /// The wire name.
    pub(crate) key: &'static str,
    /// The rest of the member as Drone writes it after the opening quote: the key,
    /// the closing quote and the colon.
    pub(crate) pattern: &'static [u8],
    /// The pattern's first eight bytes (zero-padded), as a little-endian word.
    pub(crate) head: u64,
    /// Which bytes of `head` are the pattern's.
    pub(crate) mask: u64,
    /// A second name accepted on input for the same field.
    pub(crate) alias: Option<&'static str>,
    /// What the value is.
    pub(crate) kind: Kind,
}

impl FieldSpec {
    /// A field of a model's table; `pattern` is `key` followed by `":`.
    pub(crate) const fn new(
        key: &'static str,
        pattern: &'static str,
        alias: Option<&'static str>,
        kind: Kind,
    ) -> FieldSpec {
        let pattern = pattern.as_bytes();
        assert!(
            pattern.len() == key.len() + 2,
            "the pattern is the key, `\"` and `:`"
        );
        let mut head = 0u64;
        let mut i = 0;
        while i < pattern.len() && i < 8 {
            head |= (pattern[i] as u64) << (8 * i);
            i += 1;
        }
        let mask = if pattern.len() >= 8 {
            u64::MAX
        } else {
            (1u64 << (8 * pattern.len())) - 1
        };
        FieldSpec {
            key,
            pattern,
            head,
            mask,
            alias,
            kind,
        }
    }
}

/// A model the scanner can fill: its field table, a reader per field, and its
/// unknown members.
pub(crate) trait Record: Default {
    /// The model's fields, in declaration (Drone's) order.
    const SCHEMA: &'static [FieldSpec];
    /// Reads the value of field `index` (a position in `SCHEMA`) at the scanner's
    /// cursor; `None` declines.
    fn read_field(&mut self, s: &mut Scanner<'_>, index: usize) -> Option<()>;
    /// How many unknown members the model holds.
    fn unknown_len(&self) -> usize;
    /// Whether it holds an unknown member named `key`.
    fn has_unknown(&self, key: &str) -> bool;
    /// Adds an unknown member the scanner has checked is not there yet.
    fn push_unknown(&mut self, key: String, value: Value);
}

/// Compile-time position of a field name in a list, for the duplicate-key bitmaps (of
/// the models' `Deserialize` and of the scanner).
pub(crate) const fn index_of(fields: &[&str], key: &str) -> usize {
    let mut i = 0;
    while i < fields.len() {
        let a = fields[i].as_bytes();
        let b = key.as_bytes();
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("field is not in the model's list")
}

/// Whether every table fits the scanner's 64-bit "seen" mask; the models assert it at
/// compile time.
pub(crate) const fn fits_mask(schemas: &[&[FieldSpec]]) -> bool {
    let mut i = 0;
    while i < schemas.len() {
        if schemas[i].len() > 64 {
            return false;
        }
        i += 1;
    }
    true
}
