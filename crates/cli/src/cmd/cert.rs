//! `dronehook cert`: a test CA and a server certificate it issued, so that HTTPS can be
//! tried with `serve --tls-cert/--tls-key` and `send --ca-cert` without openssl. (A
//! certificate made by `openssl req -x509` is a CA certificate, which rustls refuses as
//! a server's own.)

use std::io::Write as _;
use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::args::CertArgs;
use crate::input::reason;
use crate::{Outcome, output, usage};

/// The names a local receiver is reached by, when no `--name` is given.
const DEFAULT_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// Makes the CA and the server certificate and writes the three files, or none of
/// them when one exists already (without `--force`).
pub(crate) fn run(args: &CertArgs) -> anyhow::Result<Outcome> {
    let names: Vec<String> = if args.name.iter().all(|n| n.trim().is_empty()) {
        DEFAULT_NAMES.iter().map(|&n| n.to_owned()).collect()
    } else {
        args.name
            .iter()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect()
    };
    for name in &names {
        let host_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.*".contains(&b));
        if !host_name && name.parse::<IpAddr>().is_err() {
            return Err(usage(format!(
                "invalid --name {name:?}: give a host name (ASCII letters, digits, '-' and '.'; \
                 punycode for others) or an IP address"
            )));
        }
    }
    let ca_path = args.out.join("ca.pem");
    let cert_path = args.out.join("server.pem");
    let key_path = args.out.join("server-key.pem");
    let paths = [&ca_path, &cert_path, &key_path];
    if !args.force
        && let Some(existing) = paths.iter().find(|p| p.exists())
    {
        return Err(usage(format!(
            "{} exists; give --force to replace it",
            existing.display()
        )));
    }

    let made = make(&names, args.days)?;
    std::fs::create_dir_all(&args.out).map_err(|e| {
        usage(format!(
            "cannot create {}: {}",
            args.out.display(),
            reason(&e)
        ))
    })?;
    write(&ca_path, made.ca.as_bytes(), false)?;
    write(&cert_path, made.chain.as_bytes(), false)?;
    write(&key_path, made.key.as_bytes(), true)?;

    let [ca, cert, key] = paths.map(|p| p.display().to_string());
    let host = names.first().map_or("localhost", String::as_str);
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    output::out_line(&format!(
        "wrote {ca} (the CA), {cert} (the server's certificate and the CA's) and {key} (the \
         server's key)\nnames: {}; valid for {} days\n\nserve: dronehook serve --tls-cert {cert} \
         --tls-key {key} --secret S\nsend:  dronehook send --ca-cert {ca} --endpoint \
         https://{host}:3000/ --secret S fixture:build_finished",
        names.join(", "),
        args.days,
    ))?;
    Ok(Outcome::Ok)
}

/// The PEM texts to write.
struct Made {
    ca: String,
    chain: String,
    key: String,
}

/// A CA (allowed to issue end-entity certificates only) and a server certificate for
/// `names` that it issued; its key is dropped here, so it can issue nothing else.
fn make(names: &[String], days: u16) -> anyhow::Result<Made> {
    let failed = |e: rcgen::Error| anyhow::anyhow!("cannot make the certificates: {e}");
    // A day's margin before now, for clocks a little behind this one.
    let not_before = OffsetDateTime::now_utc() - Duration::days(1);
    let not_after = not_before + Duration::days(i64::from(days) + 1);

    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "dronehook test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_key = KeyPair::generate().map_err(failed)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(failed)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut server = CertificateParams::new(names.to_vec())
        .map_err(|e| usage(format!("invalid --name: {e}")))?;
    if let Some(first) = names.first() {
        server
            .distinguished_name
            .push(DnType::CommonName, first.as_str());
    }
    server.is_ca = IsCa::ExplicitNoCa;
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    server.not_before = not_before;
    server.not_after = not_after;
    let server_key = KeyPair::generate().map_err(failed)?;
    let server_cert = server.signed_by(&server_key, &issuer).map_err(failed)?;

    Ok(Made {
        ca: ca_cert.pem(),
        chain: format!("{}{}", server_cert.pem(), ca_cert.pem()),
        key: server_key.serialize_pem(),
    })
}

/// Writes one file; a private one is readable by its owner only, also when it
/// replaces a file that was not.
fn write(path: &Path, text: &[u8], private: bool) -> anyhow::Result<()> {
    let failed =
        |e: std::io::Error| usage(format!("cannot write {}: {}", path.display(), reason(&e)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(failed)?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(failed)?;
    }
    #[cfg(not(unix))]
    let _ = private;
    file.write_all(text).map_err(failed)?;
    Ok(())
}
