//! A Redis primary with two replicas watched by three `redis-sentinel`
//! processes on loopback, for failover tests: kill the primary and the
//! sentinels promote a replica (the other then replicates from it).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{RedisServer, command, find_program, free_port};

/// The name the sentinels know the primary by.
pub const SERVICE: &str = "mymaster";

/// A primary, its two replicas and three sentinels; all killed on drop.
#[derive(Debug)]
pub struct SentinelSet {
    primary: Option<RedisServer>,
    replicas: Vec<RedisServer>,
    sentinels: Vec<(u16, Child)>,
    _dir: tempfile::TempDir,
}

impl SentinelSet {
    /// Starts the set for the test `test_name` and waits until every
    /// sentinel knows the primary and its replica.
    ///
    /// # Panics
    /// When `redis-server` or `redis-sentinel` is missing (a test that
    /// asked for them fails without them), or the set does not come up.
    #[allow(clippy::panic)]
    pub fn start(test_name: &str) -> Self {
        let primary = RedisServer::start(test_name);
        let replicas = vec![
            RedisServer::start_replica_of(test_name, primary.port()),
            RedisServer::start_replica_of(test_name, primary.port()),
        ];
        let Some(binary) = find_program("redis-sentinel") else {
            panic!(
                "{test_name} needs redis-sentinel, which is not installed \
                 (Debian: apt-get install -y redis-sentinel) or run scripts/test-all.sh"
            );
        };
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let mut sentinels = Vec::new();
        for i in 0..3 {
            let port = free_port();
            let conf = dir.path().join(format!("sentinel-{i}.conf"));
            let text = format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {SERVICE} 127.0.0.1 {} 2\n\
                 sentinel down-after-milliseconds {SERVICE} 1000\n\
                 sentinel failover-timeout {SERVICE} 5000\n\
                 sentinel parallel-syncs {SERVICE} 1\n",
                dir.path().display(),
                primary.port()
            );
            if let Err(e) = std::fs::write(&conf, text) {
                panic!("sentinel config: {e}");
            }
            let child = Command::new(&binary)
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start redis-sentinel: {e}"));
            sentinels.push((port, child));
        }
        let set = Self {
            primary: Some(primary),
            replicas,
            sentinels,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ready = set.sentinels.iter().all(|(port, _)| {
                command(*port, &["SENTINEL", "replicas", SERVICE]).is_some_and(|r| {
                    set.replicas
                        .iter()
                        .all(|replica| r.contains(&replica.port().to_string()))
                })
            });
            if ready {
                return set;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the sentinels did not find the primary and its replica in 30 s");
    }

    /// `redis+sentinel://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/mymaster`
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|(port, _)| format!("127.0.0.1:{port}"))
            .collect();
        format!("redis+sentinel://{}/{SERVICE}", hosts.join(","))
    }

    /// The port the sentinels name as the primary now.
    pub fn primary_port(&self) -> Option<u16> {
        let (port, _) = self.sentinels.first()?;
        let reply = command(*port, &["SENTINEL", "get-master-addr-by-name", SERVICE])?;
        reply
            .lines()
            .filter_map(|line| line.parse::<u16>().ok())
            .next_back()
    }

    /// The replicas' ports (one is the primary after a failover).
    pub fn replica_ports(&self) -> Vec<u16> {
        self.replicas.iter().map(RedisServer::port).collect()
    }

    /// Kills the primary, as a crash would.
    pub fn kill_primary(&mut self) {
        if let Some(mut primary) = self.primary.take() {
            primary.stop();
        }
    }

    /// Waits until the sentinels name a replica as the primary and it
    /// acts as one; whether they did within `limit`.
    pub fn await_failover(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(port) = self.primary_port()
                && self.replica_ports().contains(&port)
                && command(port, &["ROLE"]).is_some_and(|r| r.contains("master"))
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        for (_, child) in &mut self.sentinels {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
