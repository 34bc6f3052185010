//! Stylecast: social engagement in, personalized influencer-style images out.
//!
//! The modules follow the data: `ingest` takes engagement batches into `store`;
//! `interest` turns them into affinity; `http` is the thin skin over all of it.

pub mod cache;
pub mod cli;
pub mod config;
pub mod erasure;
pub mod error;
pub mod experiment;
pub mod feed;
pub mod generate;
pub mod http;
pub mod ingest;
pub mod interest;
pub mod keys;
pub mod media;
pub mod onnx_runtime;
pub mod provenance;
pub mod recommend;
pub mod served;
pub mod startup;
pub mod store;
pub mod style;
pub mod telemetry;
pub mod tensor;
pub mod tools;
