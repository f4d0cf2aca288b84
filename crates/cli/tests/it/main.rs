//! Integration tests of the `dronehook` binary.
