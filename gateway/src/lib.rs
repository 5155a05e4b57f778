//! The Privet gateway: configuration, the SQL analysis and request pipeline,
//! the backends, and the HTTP front. The `privet` binary (src/main.rs) is a
//! thin CLI over this library.
//!
//! Map: [`config`] reads `privet.toml`; [`pipeline::Gateway`] holds what a
//! request needs (principals, [`catalog::Catalog`], the policy engine, the
//! backend) and runs authenticate → analyze ([`sql`]) → authorize → execute
//! ([`backend`]) → audit ([`audit`]); [`http`] is the HTTP front; [`demo`] and [`seed`] make the
//! zero-config demo.

pub mod access;
pub mod audit;
pub mod audit_api;
pub mod backend;
pub mod cache;
pub mod catalog;
mod civil;
pub mod config;
pub mod console;
pub mod demo;
pub mod detect;
pub mod error;
pub mod explain;
pub mod export;
pub mod http;
pub mod keyring;
pub mod keys;
pub mod masks;
pub mod metrics;
pub mod pgwire;
pub mod pipeline;
pub mod policytest;
pub mod rekey;
pub mod sealing;
pub mod seed;
pub mod sql;
#[doc(hidden)]
pub mod testing;
pub mod write;
