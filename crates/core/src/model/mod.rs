//! Domain types shared by every stage. Pure: no I/O, no git, no network.

mod image;
pub mod oci;
mod release;
mod verdict;

pub use image::{
    Digest, DigestError, ImagePin, PinError, pins_from_kustomization, set_digest_pins,
};
pub use release::LastGood;
pub use verdict::{Finding, Outcome, Verdict};
