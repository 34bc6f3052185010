//! Generation: ONNX models served from the manifest, and (as it lands) the pipeline from a
//! user's photo and interests to a personalized image.

pub mod engine;
pub mod manifest;
pub mod models;
pub mod pipeline;
pub mod settings;
pub mod timing;

pub use settings::OnnxSettings;
