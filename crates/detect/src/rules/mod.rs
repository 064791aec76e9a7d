//! The rule families (CONTRACT §2 ids), one file each. Each turns an observation into counts in
//! per-entity windows or learned state, and hands a [`Measure`](crate::engine::Measure) or an
//! instant occurrence to the engine (`engine.rs`), which opens, grows and closes incidents.

mod admin;
mod destination;
mod device;
mod export;
mod login;
mod share;

pub(crate) use destination::UnknownDest;
