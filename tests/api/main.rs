//! Black-box tests: the real app on a random port, its own database, real Postgres and Redis.

mod analyst;
mod auth;
mod cache;
mod cli;
mod consent;
mod docs;
mod erasure;
mod events;
mod experiments;
mod extreme_refs;
mod feed;
mod generate;
mod helpers;
mod honest_bytes;
mod models;
mod ops;
mod people;
mod provenance;
mod recommend;
mod spark;
