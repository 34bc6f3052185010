//! Generation: ONNX models served from the manifest, and (as it lands) the pipeline from a
//! user's photo and interests to a personalized image.

pub mod engine;
pub mod error;
pub mod manifest;
pub mod models;
pub mod pipeline;
pub mod service;
pub mod settings;
pub mod timing;

pub use error::GenerateError;
pub use service::Generation;
pub use settings::OnnxSettings;
