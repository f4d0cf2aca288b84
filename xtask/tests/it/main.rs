//! xtask's integration tests: the real `xtask` binary run against this workspace.

mod fixtures;
