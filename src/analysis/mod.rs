//! Analysis of result documents: models fitted to measurements and the advice drawn from them.
//! Works on `report::model` values and plain numbers, never on engine internals.

pub mod pool_size;
pub mod slo;
pub mod usl;
