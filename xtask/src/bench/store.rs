//! The PostgreSQL of rows (e) and (f): a fresh database for each run, found the way
//! the tests find one (crates/testkit: `DRONEHOOK_TEST_POSTGRES`, the server on
//! 127.0.0.1:5432, or a throwaway cluster), and the server's processes whose CPU the
//! run counts.

use anyhow::{Context as _, anyhow};
use dronehook_testkit::TestDatabase;

use super::procs::{PgProcs, parent};

/// Whether a PostgreSQL can be had, or why not (one line).
pub(crate) fn check() -> Result<(), String> {
    dronehook_testkit::available().map(drop).ok_or_else(|| {
        format!(
            "no PostgreSQL found: set {}, run one on 127.0.0.1:5432, or install the server \
             (apt-get install postgresql)",
            dronehook_testkit::ENV_URL
        )
    })
}

/// One run's database, dropped (with `DROP DATABASE ... WITH (FORCE)`) with this.
pub(crate) struct Database {
    db: TestDatabase,
    procs: Option<PgProcs>,
}

impl Database {
    /// Creates a database of its own on the PostgreSQL found, and finds the server's
    /// processes when it runs on this machine (`None` otherwise: its CPU is then not
    /// reported).
    pub(crate) fn create() -> anyhow::Result<Database> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let db = dronehook_testkit::try_database()
                .await
                .map_err(|e| anyhow!("rows (e) and (f): {e}"))?;
            let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
                .await
                .with_context(|| format!("connecting to the bench database {}", db.name()))?;
            let connection = tokio::spawn(connection);
            // This connection's backend is a child of the postmaster; on another
            // machine, the pid means nothing here and the parent is not found (or
            // is not PostgreSQL's: a process that is not `postgres` is not counted).
            let backend: i32 = client
                .query_one("SELECT pg_backend_pid()", &[])
                .await
                .context("asking the bench database for its backend's pid")?
                .get(0);
            drop(client);
            let _ = connection.await;
            let procs = u32::try_from(backend)
                .ok()
                .filter(|&pid| is_postgres(pid))
                .and_then(parent)
                .filter(|&pid| is_postgres(pid))
                .map(|postmaster| PgProcs::new(postmaster, db.name()));
            Ok(Database { db, procs })
        })
    }

    /// The URL receivers are given (`--store`).
    pub(crate) fn url(&self) -> &str {
        self.db.url()
    }

    /// The processes whose CPU the run reports, when found.
    pub(crate) fn procs(&self) -> Option<PgProcs> {
        self.procs.clone()
    }
}

/// Whether the process is PostgreSQL's (its command name, which the process titles
/// PostgreSQL sets leave alone, and which any user may read).
fn is_postgres(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == "postgres")
}
