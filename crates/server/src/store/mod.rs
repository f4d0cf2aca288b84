//! Stores other than the embedded SQLite journal. With the `postgres` feature: a
//! PostgreSQL store that several receivers share.

#[cfg(feature = "postgres")]
pub(crate) mod postgres;
