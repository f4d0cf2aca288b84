//! Test harness for the PostgreSQL store: finds a PostgreSQL server, gives each test a
//! fresh database of its own, and starts throwaway clusters (for tests that stop and
//! start the database under load without touching a shared server).
//!
//! A server is found, in this order:
//! 1. `DRONEHOOK_TEST_POSTGRES` (a `postgres://` URL to a database the user may
//!    `CREATE DATABASE` from), when set;
//! 2. a server answering on 127.0.0.1:5432 (user `postgres`, trust authentication);
//! 3. a throwaway cluster made with the `initdb` and `postgres` binaries found on the
//!    machine, in a temporary directory, on a free port (as the `postgres` or `nobody`
//!    user when the tests run as root, since PostgreSQL refuses to run as root).
//!
//! Where none can be had, [`database`] panics with one line saying how to get one: a
//! test that needs PostgreSQL fails, it is never skipped. A tool (the benchmark's
//! PostgreSQL rows) calls [`try_database`], which returns that line as an error.
//!
//! [`browser`] does the same for the inspector's tests with a headless Chromium.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::OnceCell;

pub mod browser;

/// The environment variable naming the PostgreSQL the tests use.
pub const ENV_URL: &str = "DRONEHOOK_TEST_POSTGRES";

/// How to get a PostgreSQL, said when none was found.
const HOW_TO_GET_ONE: &str = "set DRONEHOOK_TEST_POSTGRES=postgres://USER@HOST:PORT/DB, run a server on 127.0.0.1:5432 (user postgres, trust), or install the server binaries (apt-get install postgresql; `cargo xtask test` does so when run as root)";

/// The server the tests share: where to connect to create databases.
struct Shared {
    admin_url: String,
    /// Kept alive for the whole test process when the server is a throwaway cluster.
    _cluster: Option<Cluster>,
}

static SHARED: OnceCell<Result<Shared, String>> = OnceCell::const_new();

async fn shared() -> Result<&'static Shared, String> {
    let found = SHARED
        .get_or_init(|| async {
            if let Ok(url) = std::env::var(ENV_URL) {
                return connect(&url)
                    .await
                    .map(|()| Shared {
                        admin_url: url,
                        _cluster: None,
                    })
                    .map_err(|e| format!("{ENV_URL} does not answer: {e}"));
            }
            let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 5432));
            if TcpStream::connect_timeout(&local, Duration::from_secs(1)).is_ok() {
                for url in [
                    "postgres://postgres@127.0.0.1:5432/postgres",
                    "postgres://postgres@127.0.0.1:5432/test",
                ] {
                    if connect(url).await.is_ok() {
                        return Ok(Shared {
                            admin_url: url.to_owned(),
                            _cluster: None,
                        });
                    }
                }
            }
            let mut cluster = Cluster::start().await?;
            cluster.remove_on_exit = true;
            Ok(Shared {
                admin_url: cluster.admin_url(),
                _cluster: Some(cluster),
            })
        })
        .await;
    found
        .as_ref()
        .map_err(|reason| format!("no PostgreSQL ({reason}): {HOW_TO_GET_ONE}"))
}

async fn connect(url: &str) -> Result<(), String> {
    let client = admin_client(url).await?;
    client
        .simple_query("SELECT 1")
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

async fn admin_client(url: &str) -> Result<tokio_postgres::Client, String> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
    config.connect_timeout(Duration::from_secs(5));
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(client)
}

/// A database of its own for one test, dropped (with its connections) when this is.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A fresh database on the PostgreSQL the tests share (found as the crate's docs say).
///
/// # Panics
///
/// When no PostgreSQL can be found or started, with one line saying how to get one.
pub async fn database() -> TestDatabase {
    match try_database().await {
        Ok(db) => db,
        Err(e) => panic!("{e}"),
    }
}

/// [`database`] for a tool (the benchmark), which says why there is none in one line
/// instead of panicking.
///
/// # Errors
///
/// When no PostgreSQL can be found or started, or the database cannot be created.
pub async fn try_database() -> Result<TestDatabase, String> {
    let shared = shared().await?;
    TestDatabase::create_in(&shared.admin_url)
        .await
        .map_err(|e| format!("cannot create a database: {e}"))
}

impl TestDatabase {
    /// Creates a database with a unique name on the server `admin_url` connects to.
    pub async fn create_in(admin_url: &str) -> Result<TestDatabase, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "dronehook_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let client = admin_client(admin_url).await?;
        client
            .simple_query(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| e.to_string())?;
        Ok(TestDatabase {
            admin_url: admin_url.to_owned(),
            url: with_database(admin_url, &name),
            name,
        })
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Dropped from inside a test's runtime, which cannot be blocked on: the drop
        // runs on a thread with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let client = admin_client(&admin).await?;
                client
                    .simple_query(&sql)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("cannot drop test database {}: {e}", self.name);
        }
    }
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        // The `key=value` form: a later `dbname` wins.
        return format!("{url} dbname={name}");
    };
    let rest = &url[scheme_end + 3..];
    let query = rest.find('?').map_or("", |q| &rest[q..]);
    let authority_len = rest.find(['/', '?']).unwrap_or(rest.len());
    format!(
        "{}{}/{name}{query}",
        &url[..scheme_end + 3],
        &rest[..authority_len]
    )
}

/// A PostgreSQL cluster of its own in a temporary directory, on a free port: stopped
/// (and its directory removed) when dropped, or when the test process ends however it
/// ends (the server's wrapper stops it when its standard input closes).
pub struct Cluster {
    bin: PathBuf,
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
    port: u16,
    user: Option<String>,
    server: Option<(Child, ChildStdin)>,
    remove_on_exit: bool,
    /// Settings given to the server on its command line (`-c name=value`).
    settings: Vec<String>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("port", &self.port)
            .field("dir", &self.dir_path)
            .finish_non_exhaustive()
    }
}

/// Where the tests would find a PostgreSQL without installing one (the URL's
/// variable, the local server, or the binaries' directory), if they would.
pub fn available() -> Option<String> {
    if std::env::var_os(ENV_URL).is_some() {
        return Some(ENV_URL.to_owned());
    }
    let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 5432));
    if TcpStream::connect_timeout(&local, Duration::from_secs(1)).is_ok() {
        return Some(local.to_string());
    }
    find_binaries().map(|dir| dir.display().to_string())
}

/// The directory holding `initdb` and `postgres`, if any.
pub fn find_binaries() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    // Debian and Ubuntu keep the server binaries out of PATH, one directory per
    // version: the newest first.
    let mut versioned: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| {
            dir.filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .collect()
        })
        .unwrap_or_default();
    versioned.sort_by_key(|p| {
        std::cmp::Reverse(
            p.parent()
                .and_then(Path::file_name)
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or(0),
        )
    });
    candidates.extend(versioned);
    candidates.push("/usr/local/pgsql/bin".into());
    candidates
        .into_iter()
        .map(|dir| dir.canonicalize().unwrap_or(dir))
        .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// The uid and gid of `user`, when it exists.
fn ids(user: &str) -> Option<(u32, u32)> {
    let get = |flag: &str| {
        let out = Command::new("id").args([flag, user]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        std::str::from_utf8(&out.stdout).ok()?.trim().parse().ok()
    };
    Some((get("-u")?, get("-g")?))
}

impl Cluster {
    /// Makes and starts a cluster (trust authentication, user `postgres`, listening
    /// on 127.0.0.1 only) and waits until it answers.
    pub async fn start() -> Result<Cluster, String> {
        Cluster::start_with(&[], &[], None).await
    }

    /// Makes and starts a cluster that also takes TLS connections, with this
    /// certificate chain and private key (PEM); plain connections are still taken.
    pub async fn start_tls(cert_pem: &str, key_pem: &str) -> Result<Cluster, String> {
        Cluster::start_with(
            &[("server.crt", cert_pem), ("server.key", key_pem)],
            &[
                "ssl=on",
                "ssl_cert_file=../server.crt",
                "ssl_key_file=../server.key",
            ],
            None,
        )
        .await
    }

    /// Makes and starts a cluster whose TLS connections log in with a client
    /// certificate signed by `client_ca_pem` (`cert` authentication: the certificate's
    /// common name is the user), with this certificate chain and private key of its
    /// own (PEM). Plain connections are taken to the `postgres` database alone, so that
    /// [`Cluster::admin_url`] and [`TestDatabase::create_in`] still work.
    pub async fn start_tls_client_certs(
        cert_pem: &str,
        key_pem: &str,
        client_ca_pem: &str,
    ) -> Result<Cluster, String> {
        Cluster::start_with(
            &[
                ("server.crt", cert_pem),
                ("server.key", key_pem),
                ("client_ca.crt", client_ca_pem),
            ],
            &[
                "ssl=on",
                "ssl_cert_file=../server.crt",
                "ssl_key_file=../server.key",
                "ssl_ca_file=../client_ca.crt",
            ],
            Some(
                "hostssl all all 127.0.0.1/32 cert\n\
                 hostnossl postgres postgres 127.0.0.1/32 trust\n",
            ),
        )
        .await
    }

    /// Makes and starts a cluster with these files beside its data directory (owned by
    /// the server's user, readable by it alone), these settings, and this
    /// `pg_hba.conf` (else initdb's: trust).
    async fn start_with(
        files: &[(&str, &str)],
        settings: &[&str],
        hba: Option<&str>,
    ) -> Result<Cluster, String> {
        let bin = find_binaries().ok_or("no initdb and postgres binaries found")?;
        let dir = tempfile::Builder::new()
            .prefix("dronehook-pg-")
            .tempdir()
            .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
        let user = if is_root() {
            let user = ["postgres", "nobody"]
                .into_iter()
                .find_map(|u| ids(u).map(|ids| (u, ids)))
                .ok_or("running as root, and neither a postgres nor a nobody user exists")?;
            let (name, (uid, gid)) = user;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| format!("cannot hand the cluster's directory to {name}: {e}"))?;
            Some(name.to_owned())
        } else {
            None
        };
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot find a free port: {e}"))?
            .port();
        let mut cluster = Cluster {
            bin,
            dir_path: dir.path().to_owned(),
            dir: Some(dir),
            port,
            user,
            server: None,
            remove_on_exit: false,
            settings: settings.iter().map(|&s| s.to_owned()).collect(),
        };
        for (name, text) in files {
            use std::os::unix::fs::PermissionsExt as _;
            let path = cluster.dir_path.join(name);
            std::fs::write(&path, text).map_err(|e| format!("cannot write {name}: {e}"))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("cannot protect {name}: {e}"))?;
            if let Some((uid, gid)) = cluster.user.as_deref().and_then(ids) {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                    .map_err(|e| format!("cannot hand {name} to the server's user: {e}"))?;
            }
        }
        let data = cluster.dir_path.join("data");
        let out = cluster
            .command(&cluster.bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        if let Some(hba) = hba {
            // Written over initdb's file, which keeps its owner and mode.
            std::fs::write(data.join("pg_hba.conf"), hba)
                .map_err(|e| format!("cannot write pg_hba.conf: {e}"))?;
        }
        cluster.start_again().await?;
        Ok(cluster)
    }

    fn command(&self, program: &Path) -> Command {
        match &self.user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    /// Starts the server again after [`Cluster::stop`] (same port, same data), and
    /// waits until it answers.
    pub async fn start_again(&mut self) -> Result<(), String> {
        if self.server.is_some() {
            return Ok(());
        }
        // The wrapper stops the server (fast shutdown) when its standard input closes:
        // at `stop`, at drop, and when the test process dies without dropping.
        let script = r#"
bin=$1 dir=$2 port=$3 remove=$4
shift 4
"$bin/postgres" -D "$dir/data" -p "$port" -k "$dir" -c listen_addresses=127.0.0.1 \
    -c fsync=off -c max_connections=200 "$@" >>"$dir/server.log" 2>&1 &
pid=$!
read _unused
kill -INT "$pid"
wait "$pid"
if [ "$remove" = 1 ]; then rm -rf "$dir"; fi
"#;
        let mut child = self
            .command(Path::new("/bin/sh"))
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(&self.bin)
            .arg(&self.dir_path)
            .arg(self.port.to_string())
            .arg(if self.remove_on_exit { "1" } else { "0" })
            .args(self.settings.iter().flat_map(|s| ["-c", s.as_str()]))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start postgres: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin for the server")?;
        self.server = Some((child, stdin));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if connect(&self.admin_url()).await.is_ok() {
                return Ok(());
            }
            let exited = self
                .server
                .as_mut()
                .and_then(|(c, _)| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(self.dir_path.join("server.log")).unwrap_or_default();
                self.server = None;
                let last = log.lines().last().unwrap_or("no log").to_owned();
                return Err(format!("the throwaway PostgreSQL did not start: {last}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the server (fast shutdown: connections are closed, committed data kept)
    /// and waits until it is down.
    pub fn stop(&mut self) {
        if let Some((mut child, mut stdin)) = self.server.take() {
            let _ = stdin.flush();
            drop(stdin);
            let _ = child.wait();
        }
    }

    /// Whether the server is running.
    pub fn is_running(&self) -> bool {
        self.server.is_some()
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL to its `postgres` database, as the superuser.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        if self.remove_on_exit {
            // The wrapper has removed the directory already.
            if let Some(dir) = self.dir.take() {
                let _ = dir.keep();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_in_a_url_is_replaced() {
        assert_eq!(
            with_database("postgres://u:p@h:5/old?sslmode=disable", "new"),
            "postgres://u:p@h:5/new?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:5", "new"), "postgres://h:5/new");
        assert_eq!(
            with_database("postgresql://h?x=1", "new"),
            "postgresql://h/new?x=1"
        );
        assert_eq!(
            with_database("host=h user=u", "new"),
            "host=h user=u dbname=new"
        );
    }

    #[tokio::test]
    async fn a_database_is_created_used_and_dropped() {
        let db = database().await;
        let name = db.name().to_owned();
        let client = admin_client(db.url()).await.unwrap();
        let rows = client
            .query("SELECT current_database()", &[])
            .await
            .unwrap();
        assert_eq!(rows[0].get::<_, String>(0), name);
        drop(client);
        let admin = shared().await.unwrap().admin_url.clone();
        drop(db);
        let client = admin_client(&admin).await.unwrap();
        let left = client
            .query("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await
            .unwrap();
        assert!(left.is_empty(), "{name} was not dropped");
    }

    #[tokio::test]
    async fn a_throwaway_cluster_stops_and_starts_again_with_its_data() {
        let mut cluster = Cluster::start().await.unwrap();
        let client = admin_client(&cluster.admin_url()).await.unwrap();
        client
            .simple_query("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
            .await
            .unwrap();
        cluster.stop();
        assert!(!cluster.is_running());
        assert!(connect(&cluster.admin_url()).await.is_err());
        cluster.start_again().await.unwrap();
        let client = admin_client(&cluster.admin_url()).await.unwrap();
        let rows = client.query("SELECT n FROM kept", &[]).await.unwrap();
        assert_eq!(rows[0].get::<_, i32>(0), 7);
        let dir = cluster.dir_path.clone();
        drop(cluster);
        assert!(!dir.exists(), "the cluster's directory is removed");
    }
}
