//! `dronehook secret`: a new random secret, like `openssl rand -hex 16`.

use std::fmt::Write as _;

use rand::RngCore as _;

use crate::Outcome;
use crate::args::SecretArgs;
use crate::output;

/// Prints `args.bytes` random bytes in hex.
pub(crate) fn run(args: &SecretArgs) -> anyhow::Result<Outcome> {
    let mut bytes = vec![0u8; usize::from(args.bytes)];
    // ThreadRng is a CSPRNG seeded from the operating system, fit for secrets.
    rand::rng().fill_bytes(&mut bytes);
    let mut hex = String::with_capacity(bytes.len() * 2);
    for b in &bytes {
        let _ = write!(hex, "{b:02x}");
    }
    output::out_line(&hex)?;
    Ok(Outcome::Ok)
}
