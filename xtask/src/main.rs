//! `cargo xtask`: the project's automation. Filled in by the xtask issue.

fn main() -> anyhow::Result<()> {
    Ok(())
}
