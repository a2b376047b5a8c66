//! Every Rust code block of the README and of `docs/*.md`, compiled by
//! `cargo test` as doctests (blocks marked `no_run` are compiled, not run).
//! A block that stops compiling fails the test run, so the documentation
//! cannot drift from the API. Blocks are written whole (imports, a function
//! around the code), so that what a reader copies is what is compiled.
#![cfg_attr(not(doctest), allow(unused))]

#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct Readme;

#[cfg(doctest)]
#[doc = include_str!("../../architecture.md")]
pub struct Architecture;

#[cfg(doctest)]
#[doc = include_str!("../../axum.md")]
pub struct Axum;

#[cfg(doctest)]
#[doc = include_str!("../../jwks.md")]
pub struct Jwks;

#[cfg(doctest)]
#[doc = include_str!("../../new-provider.md")]
pub struct NewProvider;

#[cfg(doctest)]
#[doc = include_str!("../../oauth-server.md")]
pub struct OauthServer;

#[cfg(doctest)]
#[doc = include_str!("../../pkce.md")]
pub struct Pkce;

#[cfg(doctest)]
#[doc = include_str!("../../ratelimit.md")]
pub struct Ratelimit;

#[cfg(doctest)]
#[doc = include_str!("../../session.md")]
pub struct Session;

#[cfg(doctest)]
#[doc = include_str!("../../vault.md")]
pub struct Vault;
