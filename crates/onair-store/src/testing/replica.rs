//! A streaming replica of the test PostgreSQL server, made by the test that needs it:
//! `pg_basebackup -R` of the whole cluster into a temporary directory, started on a free
//! port with its socket in that directory (so tests in parallel never share anything),
//! stopped and removed when dropped, whether the test passed or not. No replication slot
//! is created, so nothing is left on the primary either. PostgreSQL refuses to run as
//! root: run as root (CI), the backup and the server run as the `postgres` user.
//! The primary must accept replication connections from 127.0.0.1 (`scripts/setup`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

/// How long the backup, the start and the catching up may take on a busy machine.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

pub struct StreamingReplica {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// The primary's user, whom the replica trusts too.
    user: String,
    running: bool,
}

impl StreamingReplica {
    /// Clones the server at `admin_url` (`ONAIR_TEST_POSTGRES_URL`) and waits until the
    /// replica streams from it.
    pub async fn start(admin_url: &str) -> Self {
        let mut admin = PgConnection::connect(admin_url)
            .await
            .expect("connect to PostgreSQL");
        let bin = bin_dir(&mut admin).await;
        let dir = tempfile::Builder::new()
            .prefix("onair-replica-")
            .tempdir()
            .expect("temp dir");
        let as_postgres = running_as_root();
        if as_postgres {
            chown_to_postgres(dir.path());
        }
        let data = dir.path().join("data");
        let backup = run(
            as_postgres,
            &bin.join("pg_basebackup"),
            &[
                "-d",
                admin_url,
                "-D",
                path_str(&data),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
        );
        assert!(
            backup.status.success(),
            "pg_basebackup failed (does pg_hba.conf allow replication from 127.0.0.1? \
             scripts/setup adds it): {}",
            String::from_utf8_lossy(&backup.stderr)
        );
        let port = free_port();
        // A hot standby needs these at least as high as on its primary.
        let settings: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, setting FROM pg_settings WHERE name IN ('max_connections', \
             'max_worker_processes', 'max_wal_senders', 'max_prepared_transactions', \
             'max_locks_per_transaction')",
        )
        .fetch_all(&mut admin)
        .await
        .expect("primary settings");
        let mut conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             hot_standby = on\nfsync = off\nshared_buffers = 16MB\n\
             wal_receiver_status_interval = 1s\n",
            path_str(dir.path())
        );
        for (name, value) in settings {
            conf.push_str(&format!("{name} = {value}\n"));
        }
        // Debian keeps the configuration outside the data directory: the copy has none.
        write_owned(&data.join("postgresql.conf"), &conf, as_postgres);
        write_owned(
            &data.join("pg_hba.conf"),
            "local all all trust\nhost all all 127.0.0.1/32 trust\n",
            as_postgres,
        );
        let user = PgConnectOptions::from_str(admin_url)
            .expect("a PostgreSQL URL")
            .get_username()
            .to_owned();
        let mut replica = Self {
            dir,
            bin,
            port,
            user,
            running: false,
        };
        replica.pg_ctl(&["start", "-w", "-t", "120"]);
        replica.running = true;
        replica.wait_streaming().await;
        replica
    }

    /// The URL on the replica of the database at `primary_url` (a database made on the
    /// primary before or after the replica, `with_postgres`'s for instance).
    pub fn url_of(&self, primary_url: &str) -> String {
        let options = PgConnectOptions::from_str(primary_url).expect("a PostgreSQL URL");
        self.url(options.get_database().unwrap_or("postgres"))
    }

    /// `host:port`, as the server names the replica in its metrics.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn url(&self, database: &str) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{database}",
            self.user, self.port
        )
    }

    /// Stops replaying WAL (`pg_wal_replay_pause()`): it keeps receiving, and falls behind.
    pub async fn pause(&self) {
        self.execute("SELECT pg_wal_replay_pause()").await;
    }

    pub async fn resume(&self) {
        self.execute("SELECT pg_wal_replay_resume()").await;
    }

    /// Waits until the replica has replayed everything the primary at `admin_url` has
    /// flushed now.
    pub async fn wait_caught_up(&self, admin_url: &str) {
        let mut primary = PgConnection::connect(admin_url)
            .await
            .expect("connect to PostgreSQL");
        let target: String = sqlx::query_scalar("SELECT pg_current_wal_flush_lsn()::text")
            .fetch_one(&mut primary)
            .await
            .expect("primary LSN");
        let mut replica = PgConnection::connect(&self.url("postgres"))
            .await
            .expect("connect to the replica");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let caught_up: bool =
                sqlx::query_scalar("SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn")
                    .bind(&target)
                    .fetch_one(&mut replica)
                    .await
                    .expect("replica LSN");
            if caught_up {
                return;
            }
            assert!(Instant::now() < deadline, "the replica never caught up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn execute(&self, sql: &'static str) {
        let mut replica = PgConnection::connect(&self.url("postgres"))
            .await
            .expect("connect to the replica");
        sqlx::raw_sql(sql)
            .execute(&mut replica)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Stops the server at once (as a crash would).
    pub fn stop(&mut self) {
        if self.running {
            self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
            self.running = false;
        }
    }

    async fn wait_streaming(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let status: Option<String> = match PgConnection::connect(&self.url("postgres")).await {
                Ok(mut conn) => sqlx::query_scalar("SELECT status FROM pg_stat_wal_receiver")
                    .fetch_optional(&mut conn)
                    .await
                    .ok()
                    .flatten(),
                Err(_) => None,
            };
            if status.as_deref() == Some("streaming") {
                return;
            }
            assert!(Instant::now() < deadline, "the replica never streamed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `pg_ctl` on the data directory, with the server's log beside it.
    fn pg_ctl(&self, args: &[&str]) {
        let out = self.run_pg_ctl(args);
        let log = self.dir.path().join("server.log");
        assert!(
            out.status.success(),
            "pg_ctl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn run_pg_ctl(&self, args: &[&str]) -> std::process::Output {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("server.log");
        let mut all = vec!["-D", path_str(&data), "-l", path_str(&log)];
        all.extend_from_slice(args);
        run(running_as_root(), &self.bin.join("pg_ctl"), &all)
    }
}

impl Drop for StreamingReplica {
    fn drop(&mut self) {
        // Not `stop`: a panic in a drop while the test panics would abort the run.
        if self.running {
            let _ = self.run_pg_ctl(&["stop", "-m", "immediate", "-w"]);
        }
        // The temporary directory removes itself after this.
    }
}

/// Where the server's own programs are: Debian keeps `pg_ctl` off the PATH, in
/// /usr/lib/postgresql/<major>/bin; elsewhere they are on the PATH.
async fn bin_dir(admin: &mut PgConnection) -> PathBuf {
    let version: String = sqlx::query_scalar("SHOW server_version_num")
        .fetch_one(admin)
        .await
        .expect("server version");
    let major = version.parse::<u32>().expect("a number") / 10_000;
    let debian = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
    if debian.join("pg_ctl").exists() {
        debian
    } else {
        PathBuf::new()
    }
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn chown_to_postgres(path: &Path) {
    let status = Command::new("chown")
        .args(["postgres:", path_str(path)])
        .status()
        .expect("chown runs");
    assert!(status.success(), "chown postgres {}", path.display());
}

fn write_owned(path: &Path, text: &str, as_postgres: bool) {
    std::fs::write(path, text).expect("write the replica's configuration");
    if as_postgres {
        chown_to_postgres(path);
    }
}

/// Runs `program` (as `postgres` when `as_postgres`), with its output captured.
fn run(as_postgres: bool, program: &Path, args: &[&str]) -> std::process::Output {
    let mut command = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()))
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}
