//! The Redis store shared by several processes: two processes writing the
//! same users lose nothing; a Redis restart mid-run loses no acknowledged
//! write and tears no record; a dead Redis is a typed error that changes
//! nothing; Redis never holds a plaintext token.
//!
//! The test binary re-executes itself as the second process
//! (`child_process_entry` with `MCP_VAULT_REDIS_CHILD` set). Needs
//! `redis-server`: ignored by a plain `cargo test`, run by
//! `scripts/test-all.sh`.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{KEY_A, check_payload, payload, user};
use mcp_auth_core::RedisConfig;
use mcp_auth_testkit::RedisServer;
use mcp_auth_vault::store::RedisStore;
use mcp_auth_vault::{Credential, KeyMaterial, Vault, VaultError};
use secrecy::{ExposeSecret, SecretString};

const CHILD: &str = "MCP_VAULT_REDIS_CHILD";
const URL: &str = "MCP_VAULT_REDIS_URL";

fn vault(url: &str) -> Vault {
    vault_at(RedisConfig::new(url, RedisStore::DEFAULT_PREFIX))
}

fn vault_at(config: RedisConfig) -> Vault {
    let config = config
        .response_timeout(Duration::from_millis(500))
        .connection_timeout(Duration::from_millis(500));
    Vault::builder_with_store(RedisStore::open(config).expect("store"))
        .key(KeyMaterial::raw(KEY_A))
        .open()
        .expect("open")
}

#[test]
fn child_process_entry() {
    let (Ok(name), Ok(url)) = (std::env::var(CHILD), std::env::var(URL)) else {
        return; // not a child: nothing to do
    };
    let vault = vault(&url);
    for k in 0..30 {
        vault
            .put_bytes(
                &user("shared"),
                &format!("{name}-{k}"),
                format!("{name} value {k}").as_bytes(),
            )
            .expect("put shared");
        vault
            .put_bytes(&user(&format!("own-{name}")), &format!("p{k}"), b"own")
            .expect("put own");
    }
}

#[test]
#[ignore = "needs redis-server"]
fn two_processes_writing_the_same_users_lose_no_update() {
    let redis = RedisServer::start("vault::two_processes_writing_the_same_users");
    two_writers_and_a_reader(&redis.url());
}

/// The same on a Redis Cluster of three primaries, the URL's first seed
/// node not the one holding the vault's slot: every process follows the
/// `MOVED` answer, and the `WATCH`/`MULTI` transactions hold there.
#[test]
#[ignore = "needs redis-server"]
fn two_processes_writing_the_same_users_on_a_cluster_lose_no_update() {
    let cluster = mcp_auth_testkit::cluster::RedisCluster::start("vault on a cluster");
    let url = cluster.url_led_by_a_node_without(&format!("{{{}}}", RedisStore::DEFAULT_PREFIX));
    two_writers_and_a_reader(&url);
    // The keys sit on one node, under the hash tag.
    let counts = cluster.key_counts();
    assert_eq!(counts.iter().filter(|n| **n > 0).count(), 1, "{counts:?}");
}

fn two_writers_and_a_reader(url: &str) {
    drop(vault(url));
    let spawn = |name: &str| {
        Command::new(std::env::current_exe().expect("test binary"))
            .args(["child_process_entry", "--exact", "--test-threads=1"])
            .env(CHILD, name)
            .env(URL, url)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn")
    };
    let (mut a, mut b) = (spawn("a"), spawn("b"));
    // This process reads while they write: every value it sees is whole.
    let reader = vault(url);
    for _ in 0..50 {
        for provider in reader.providers(&user("shared")).expect("list") {
            let value = reader
                .get_bytes(&user("shared"), &provider)
                .expect("get")
                .expect("listed, so present");
            let (name, k) = provider.split_once('-').expect("name-k");
            assert_eq!(
                value.expose_secret(),
                format!("{name} value {k}").as_bytes()
            );
        }
    }
    assert!(a.wait().expect("a").success(), "child a failed");
    assert!(b.wait().expect("b").success(), "child b failed");
    let shared = reader.providers(&user("shared")).expect("list");
    assert_eq!(shared.len(), 60, "{shared:?}");
    for name in ["a", "b"] {
        assert_eq!(
            reader
                .providers(&user(&format!("own-{name}")))
                .expect("list")
                .len(),
            30
        );
    }
    let mut users = reader.users().expect("users");
    users.sort();
    assert_eq!(users, vec![user("own-a"), user("own-b"), user("shared")]);
}

#[test]
#[ignore = "needs redis-server"]
fn a_redis_restart_mid_run_loses_no_acknowledged_write_and_tears_nothing() {
    let mut redis =
        RedisServer::start_persistent("vault::a_redis_restart_mid_run_loses_no_acknowledged");
    let url = redis.url();
    let writer = std::thread::spawn(move || {
        let vault = vault(&url);
        let mut acknowledged = [0u64; 3];
        let mut refused = 0;
        for version in 1..=400u64 {
            for (u, last) in acknowledged.iter_mut().enumerate() {
                match vault.put_bytes(&user(&format!("user-{u}")), "p", &payload(u, 0, version)) {
                    Ok(()) => *last = version,
                    Err(VaultError::StoreUnavailable(_)) => refused += 1,
                    Err(other) => panic!("unexpected error: {other}"),
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        (acknowledged, refused)
    });
    std::thread::sleep(Duration::from_millis(300));
    redis.restart();
    let (acknowledged, refused) = writer.join().expect("writer");
    let vault = vault(&redis.url());
    for (u, last) in acknowledged.iter().enumerate() {
        let value = vault
            .get_bytes(&user(&format!("user-{u}")), "p")
            .expect("get")
            .expect("present");
        let version = check_payload(value.expose_secret(), u, 0).expect("a whole record");
        assert_eq!(
            version, *last,
            "the last acknowledged write is what is stored"
        );
    }
    eprintln!("writes refused while Redis was down: {refused}");
}

#[test]
#[ignore = "needs redis-server"]
fn a_dead_redis_is_a_typed_error_and_redis_never_holds_plaintext() {
    let mut redis = RedisServer::start("vault::a_dead_redis_is_a_typed_error");
    let v = vault(&redis.url());
    let alice = user("alice@example.com");
    let cred = Credential::new(SecretString::from("upstream-access-token-value"))
        .with_refresh_token(SecretString::from("upstream-refresh-token-value"));
    v.put(&alice, "spotify", &cred).expect("put");

    // Everything Redis holds, as text: no token, no user id in the clear.
    let client = redis::Client::open(redis.url()).expect("client");
    let mut conn = client.get_connection().expect("conn");
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).expect("keys");
    let mut everything = keys.join(" ");
    for key in &keys {
        let kind: String = redis::cmd("TYPE").arg(key).query(&mut conn).expect("type");
        if kind == "string" {
            let bytes: Vec<u8> = redis::cmd("GET").arg(key).query(&mut conn).expect("get");
            everything.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    for key in &keys {
        let kind: String = redis::cmd("TYPE").arg(key).query(&mut conn).expect("type");
        if kind == "set" {
            let members: Vec<String> = redis::cmd("SMEMBERS")
                .arg(key)
                .query(&mut conn)
                .expect("members");
            everything.push_str(&members.join(" "));
        }
    }
    assert!(!everything.contains("token-value"), "{everything}");
    // No user id, and no storage key (which decodes to one), anywhere.
    for needle in ["alice", alice.storage_key().as_str()] {
        assert!(!everything.contains(needle), "{needle} in {everything}");
    }
    assert_eq!(v.users().expect("users"), vec![alice.clone()]);

    redis.stop();
    let err = v
        .put(&alice, "spotify", &Credential::new(SecretString::from("x")))
        .unwrap_err();
    assert!(matches!(err, VaultError::StoreUnavailable(_)), "{err:?}");
    assert!(matches!(
        v.get(&alice, "spotify").unwrap_err(),
        VaultError::StoreUnavailable(_)
    ));
    let text = format!("{err} {err:?} {v:?}");
    assert!(!text.contains("redis://"), "{text}");
}

/// The vault over TLS (`rediss://`, a private CA, a password): what is
/// written is read back, by a second vault on its own connection too.
#[test]
#[ignore = "needs redis-server"]
fn the_vault_works_over_tls() {
    let redis = RedisServer::start_tls(
        "vault over TLS",
        mcp_auth_testkit::TlsOptions {
            password: Some("vault-tls-pass".to_owned()),
            client_auth: false,
        },
    );
    let writer = vault_at(redis.config(RedisStore::DEFAULT_PREFIX));
    writer
        .put_bytes(&user("tls-user"), "token", b"over tls")
        .expect("put");
    let reader = vault_at(redis.config(RedisStore::DEFAULT_PREFIX));
    assert_eq!(
        reader
            .get_bytes(&user("tls-user"), "token")
            .expect("get")
            .map(|b| b.expose_secret().to_vec()),
        Some(b"over tls".to_vec())
    );
}

/// A Redis vault written by release 0.1 (keys and the `users` set carrying
/// user ids) is migrated at open: every credential readable, no user id
/// left in any key or set member, the listing by user intact.
#[test]
#[ignore = "needs redis-server"]
fn a_vault_written_before_pseudonyms_migrates_in_redis() {
    let redis = RedisServer::start("vault::migrates in redis");
    let client = redis::Client::open(redis.url()).expect("client");
    let mut conn = client.get_connection().expect("conn");
    let prefix = RedisStore::DEFAULT_PREFIX;
    // The release-0.1 layout: `u:<storage key>`, `users` = raw ids.
    let fixture = common::fixture_v1_dir();
    let manifest = std::fs::read(fixture.join("keys.manifest")).expect("manifest");
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}:manifest"))
        .arg(manifest)
        .query(&mut conn)
        .expect("set");
    for (id, _) in common::FIXTURE_V1_USERS {
        let u = user(id);
        let bytes =
            std::fs::read(fixture.join(format!("{}.vault", u.storage_key()))).expect("file");
        let _: () = redis::cmd("SET")
            .arg(format!("{prefix}:u:{}", u.storage_key()))
            .arg(bytes)
            .query(&mut conn)
            .expect("set");
        let _: () = redis::cmd("SADD")
            .arg(format!("{prefix}:users"))
            .arg(id.to_string())
            .query(&mut conn)
            .expect("sadd");
    }

    let config = RedisConfig::new(redis.url(), prefix);
    let open = || {
        Vault::builder_with_store(RedisStore::open(config.clone()).expect("store"))
            .key(KeyMaterial::raw(common::FIXTURE_V1_KEY))
            .open()
            .expect("open migrates")
    };
    let v = open();
    common::assert_fixture_v1_intact(&v);
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).expect("keys");
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{prefix}:users"))
        .query(&mut conn)
        .expect("members");
    let text = format!("{keys:?} {members:?}");
    for (id, _) in common::FIXTURE_V1_USERS {
        assert!(
            !text.contains(id) && !text.contains(user(id).storage_key().as_str()),
            "{id} in {text}"
        );
    }
    assert_eq!(members.len(), 3, "{members:?}");
    // A second process opening it finds nothing more to do and agrees.
    common::assert_fixture_v1_intact(&open());
}
