//! Style features: VGG19 feature maps (through ort) → Gram matrices (ndarray), and the style
//! encoder's compact code.

pub mod extract;
pub mod gram;
pub mod service;
