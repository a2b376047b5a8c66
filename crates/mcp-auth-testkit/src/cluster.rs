//! A Redis Cluster of three primaries on loopback (no replicas), for the
//! stores' conformance suites: every slot assigned, every node agreeing.

use std::time::{Duration, Instant};

use crate::{RedisServer, command};

/// Three `redis-server --cluster-enabled yes` processes sharing the 16,384
/// slots; all killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

/// How many primaries a test cluster has.
pub const PRIMARIES: usize = 3;

impl RedisCluster {
    /// Starts the cluster for the test `test_name`: three nodes, a third
    /// of the slots each (`CLUSTER ADDSLOTSRANGE`), introduced to each
    /// other (`CLUSTER MEET`); returns once every node reports
    /// `cluster_state:ok` and knows the three.
    ///
    /// # Panics
    /// When `redis-server` is missing (a test that asked for it fails
    /// without it), or the cluster does not form within 30 s.
    #[allow(clippy::panic)]
    pub fn start(test_name: &str) -> Self {
        let nodes: Vec<RedisServer> = (0..PRIMARIES)
            .map(|_| RedisServer::start_cluster_node(test_name))
            .collect();
        let per = 16384 / PRIMARIES;
        for (i, node) in nodes.iter().enumerate() {
            let first = i * per;
            let last = if i + 1 == PRIMARIES {
                16383
            } else {
                (i + 1) * per - 1
            };
            let reply = command(
                node.port(),
                &[
                    "CLUSTER",
                    "ADDSLOTSRANGE",
                    &first.to_string(),
                    &last.to_string(),
                ],
            );
            if reply.as_deref() != Some("+OK\r\n") {
                panic!("CLUSTER ADDSLOTSRANGE on node {i}: {reply:?}");
            }
        }
        for node in &nodes[1..] {
            let bus = node.cluster_port().unwrap_or_default();
            let reply = command(
                nodes[0].port(),
                &[
                    "CLUSTER",
                    "MEET",
                    "127.0.0.1",
                    &node.port().to_string(),
                    &bus.to_string(),
                ],
            );
            if reply.as_deref() != Some("+OK\r\n") {
                panic!("CLUSTER MEET: {reply:?}");
            }
        }
        let cluster = Self { nodes };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if cluster.nodes.iter().all(|node| {
                command(node.port(), &["CLUSTER", "INFO"]).is_some_and(|info| {
                    info.contains("cluster_state:ok")
                        && info.contains(&format!("cluster_known_nodes:{PRIMARIES}"))
                })
            }) {
                return cluster;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the test Redis Cluster did not form within 30 s");
    }

    /// `redis+cluster://127.0.0.1:<p1>,127.0.0.1:<p2>,127.0.0.1:<p3>/`.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        format!("redis+cluster://{}/", nodes.join(","))
    }

    /// The cluster's URL with its seed nodes ordered so that the first
    /// does not hold `key`'s slot: a client that talks to the first seed
    /// must follow a `MOVED` answer.
    ///
    /// # Panics
    /// When no node answers `CLUSTER KEYSLOT`.
    #[allow(clippy::panic)]
    pub fn url_led_by_a_node_without(&self, key: &str) -> String {
        let slot: usize = command(self.nodes[0].port(), &["CLUSTER", "KEYSLOT", key])
            .and_then(|r| r.trim().trim_start_matches(':').parse().ok())
            .unwrap_or_else(|| panic!("CLUSTER KEYSLOT {key} got no answer"));
        let owner = (slot / (16384 / PRIMARIES)).min(PRIMARIES - 1);
        let mut ports = self.ports();
        ports.rotate_left((owner + 1) % PRIMARIES);
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("redis+cluster://{}/", nodes.join(","))
    }

    /// The configuration a store needs to reach the cluster under `prefix`.
    pub fn config(&self, prefix: &str) -> mcp_auth_core::RedisConfig {
        mcp_auth_core::RedisConfig::new(self.url(), prefix)
    }

    /// The nodes' client ports.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// How many keys each node holds (`DBSIZE`), in node order.
    pub fn key_counts(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .map(|n| {
                command(n.port(), &["DBSIZE"])
                    .and_then(|r| r.trim().trim_start_matches(':').parse().ok())
                    .unwrap_or(0)
            })
            .collect()
    }
}
