//! Overload: many slowloris connections beside legitimate load.
