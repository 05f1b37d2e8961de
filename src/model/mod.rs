//! Domain types shared by every stage. Pure: no I/O, no git, no network.

mod image;

pub use image::{Digest, DigestError, ImagePin, PinError, pins_from_kustomization};
