//! The POS (point-of-sale, Odoo-like) dataset that pgstorm's workloads query, and its seeding.
//!
//! Three tables in schema `pgstorm`: `res_partner` (customers), `pos_order` and `pos_order_line`,
//! plus the one-row marker table `pgstorm.pgstorm_meta` that records what was seeded.
//!
//! Invariants:
//! - pgstorm touches nothing outside schema `pgstorm`, and touches that schema only when the marker
//!   table is in it: a `pgstorm` schema without it was made by someone else and is refused with
//!   [`DatasetError::ForeignSchema`] by every function here.
//! - A seed is deterministic: the same `(scale, seed)` gives identical table contents whatever the
//!   thread count or pgstorm build (see `generate`).
//! - `seed` replaces only the dataset tables and the marker, swapping staging tables in with one
//!   short transaction: readers see the old dataset or the new one, never half of one. Other tables in the schema (e.g. those of the
//!   isolation scenario) are left alone; `clean` drops the whole schema.
//! - The data window is fixed, not "the last 30 days": [`data_end`] and 30 days before it, so
//!   workload parameters drawn inside it always hit data.

pub mod disk;
mod generate;
mod load;
pub mod pgbench;
mod schema;
pub mod size;
mod tasks;

use chrono::{DateTime, Utc};

use crate::stop::StopToken;

pub use load::{seed, seed_parallel, seed_with, Connect, Phase, Progress};
pub(crate) use schema::DATASET_TABLES;
pub use schema::{claim_schema, clean, status, table_counts};
pub use size::DataSize;

/// The schema pgstorm owns in the target database.
pub const SCHEMA: &str = "pgstorm";
/// Smallest accepted `--scale`.
pub const MIN_SCALE: u32 = 1;
/// Largest accepted `--scale` (100 M orders, ~300 M lines).
pub const MAX_SCALE: u32 = 100_000;
/// Customers per unit of scale.
pub const PARTNERS_PER_SCALE: i64 = 100;
/// Orders per unit of scale.
pub const ORDERS_PER_SCALE: i64 = 1_000;
/// Bytes of tables and indexes per unit of scale, as seeded (measured on PostgreSQL 15: scale 20
/// took 487 KB per unit, scale 250 456 KB; the small fixed part weighs more at small scales).
/// Used to estimate a seed's size before making it; `tests/dataset_scale.rs` checks it.
pub const BYTES_PER_SCALE: u64 = 480_000;
/// Days covered by the orders.
pub const WINDOW_DAYS: i64 = 30;
/// End of the data window, 2026-01-01T00:00:00Z, as Unix seconds. Fixed so that a seed is the same
/// whenever it is made.
pub const DATA_END_UNIX: i64 = 1_767_225_600;

/// End of the data window (exclusive): 2026-01-01T00:00:00Z.
pub fn data_end() -> DateTime<Utc> {
    DateTime::from_timestamp(DATA_END_UNIX, 0).expect("constant is a valid time")
}

/// Start of the data window (inclusive): [`data_end`] minus [`WINDOW_DAYS`] days.
pub fn data_start() -> DateTime<Utc> {
    data_end() - chrono::Duration::days(WINDOW_DAYS)
}

/// What to seed.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    /// Size multiplier: scale 1 is 100 partners, 1,000 orders, ~3,000 lines.
    pub scale: u32,
    /// PRNG seed: the same seed and scale give identical tables.
    pub seed: u64,
    /// Print progress (rows loaded, rows/s) to stderr at most once a second.
    pub progress: bool,
    /// What stops the seed (Ctrl-C in the app): the streams end, and the seed fails as
    /// interrupted.
    pub stop: StopToken,
}

impl Default for SeedOptions {
    fn default() -> SeedOptions {
        SeedOptions {
            scale: 1,
            seed: 1,
            progress: false,
            stop: StopToken::new(),
        }
    }
}

/// The content of `pgstorm.pgstorm_meta`: which pgstorm seeded the dataset, how, and what is in it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Marker {
    /// Version of the pgstorm that seeded the dataset.
    pub pgstorm_version: String,
    /// The `--scale` it was seeded with.
    pub scale: u32,
    /// The PRNG seed it was seeded with.
    pub seed: u64,
    /// When the seed was committed (server clock).
    pub created_at: DateTime<Utc>,
    /// First instant of the orders' time window (inclusive).
    pub data_start: DateTime<Utc>,
    /// End of the orders' time window (exclusive).
    pub data_end: DateTime<Utc>,
    /// Rows in `res_partner` at seed time.
    pub partners: i64,
    /// Rows in `pos_order` at seed time.
    pub orders: i64,
    /// Rows in `pos_order_line` at seed time.
    pub lines: i64,
}

/// Why a dataset operation failed; each message says what to do next.
#[derive(thiserror::Error, Debug)]
pub enum DatasetError {
    /// Schema `pgstorm` exists but was not created by pgstorm.
    #[error(
        "schema \"{SCHEMA}\" exists in this database but was not created by pgstorm (it has no \
         {SCHEMA}.pgstorm_meta table), so pgstorm will not touch it: point pgstorm at another \
         database, or drop the schema yourself (DROP SCHEMA {SCHEMA} CASCADE) if it is disposable"
    )]
    ForeignSchema,
    /// `--scale` outside [`MIN_SCALE`]..=[`MAX_SCALE`].
    #[error("invalid scale {0}: use a scale from {MIN_SCALE} to {MAX_SCALE} (scale 1 = 100 partners, 1,000 orders, ~3,000 order lines)")]
    InvalidScale(u32),
    /// No dataset and the caller asked not to seed one.
    #[error("the target database has no pgstorm dataset: run `pgstorm seed` first (or drop --no-seed to seed scale 1 automatically)")]
    NotSeeded,
    /// The dataset has another scale than the one asked for, and the caller asked not to seed.
    #[error("the pgstorm dataset is seeded at scale {seeded}, not the scale {asked} asked for: run `pgstorm seed --scale {asked}` first (or drop --no-seed to reseed automatically)")]
    ScaleMismatch {
        /// The marker's scale.
        seeded: u32,
        /// The scale asked for (`-s`).
        asked: u32,
    },
    /// A database call failed; `step` says during what.
    #[error("{step}: {}", describe(.source))]
    Db {
        /// What pgstorm was doing, e.g. "loading pos_order".
        step: &'static str,
        /// The driver's error.
        #[source]
        source: postgres::Error,
    },
    /// Streaming COPY data to the server failed.
    #[error("{step}: sending COPY data failed: {source}")]
    Copy {
        /// Which table was being loaded.
        step: &'static str,
        /// The I/O error (wrapping the driver's).
        #[source]
        source: std::io::Error,
    },
    /// The seed would not fit in the free space of the server's data directory.
    #[error("a seed at scale {scale} needs about {:.1} MB (tables and indexes) but the server's data directory {dir} has {:.1} MB free: free space there, or give a smaller scale (about {} fits)", *.estimate as f64 / 1e6, *.free as f64 / 1e6, .free / BYTES_PER_SCALE)]
    NoRoom {
        /// The scale asked for.
        scale: u32,
        /// Estimated bytes of the dataset.
        estimate: u64,
        /// The server's data_directory.
        dir: String,
        /// Free bytes there.
        free: u64,
    },
    /// A loading stream stopped because another one failed or the user interrupted; the staging
    /// tables it leaves are dropped by the next seed.
    #[error("the seed stopped before it finished (interrupted, or another loading stream failed); the previous dataset is untouched and the next seed cleans up")]
    Stopped,
    /// The loaded data does not match what was generated (a bug, or someone writing concurrently).
    #[error("{0}")]
    Inconsistent(String),
}

impl DatasetError {
    /// The process exit classification of this error.
    pub fn exit_kind(&self) -> crate::error::ExitKind {
        use crate::error::ExitKind;
        match self {
            DatasetError::InvalidScale(_)
            | DatasetError::NotSeeded
            | DatasetError::ScaleMismatch { .. }
            | DatasetError::NoRoom { .. } => ExitKind::Usage,
            DatasetError::ForeignSchema | DatasetError::Db { .. } | DatasetError::Copy { .. } => {
                ExitKind::Target
            }
            DatasetError::Inconsistent(_) => ExitKind::Internal,
            DatasetError::Stopped => ExitKind::Interrupted,
        }
    }
}

/// The server's message for a database error (the driver's `Display` says only "db error").
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!(
                "{}: {} (SQLSTATE {})",
                db.severity(),
                db.message(),
                db.code().code()
            );
            if let Some(hint) = db.hint() {
                s.push_str("; hint: ");
                s.push_str(hint);
            }
            s
        }
        None => e.to_string(),
    }
}

/// Attaches the step to a driver error.
trait Step<T> {
    fn step(self, step: &'static str) -> Result<T, DatasetError>;
}

impl<T> Step<T> for Result<T, postgres::Error> {
    fn step(self, step: &'static str) -> Result<T, DatasetError> {
        self.map_err(|source| DatasetError::Db { step, source })
    }
}

/// Checks `scale` against [`MIN_SCALE`]..=[`MAX_SCALE`].
pub fn validate_scale(scale: u32) -> Result<u32, DatasetError> {
    if (MIN_SCALE..=MAX_SCALE).contains(&scale) {
        Ok(scale)
    } else {
        Err(DatasetError::InvalidScale(scale))
    }
}

/// The dataset a workload asks for: its scale (`-s`), or whatever is seeded.
#[derive(Debug, Clone, Default)]
pub struct Wanted {
    /// The scale asked for; `None` takes the seeded dataset whatever its scale (and seeds
    /// [`MIN_SCALE`] when there is none).
    pub scale: Option<u32>,
    /// Fail instead of seeding (`--no-seed`).
    pub no_seed: bool,
    /// The server runs on this machine: a seed is first checked against the free space of its
    /// data directory (see [`disk`]).
    pub local: bool,
    /// What stops a seed this starts ([`SeedOptions::stop`]).
    pub stop: StopToken,
}

/// The existing dataset's marker, or (unless `no_seed`) a fresh scale-1 seed-1 dataset, announced
/// through `say` because seeding changes the target database.
pub fn ensure(
    client: &mut postgres::Client,
    no_seed: bool,
    say: &mut dyn FnMut(&str),
) -> Result<Marker, DatasetError> {
    ensure_scale(
        client,
        Wanted {
            scale: None,
            no_seed,
            local: false,
            stop: StopToken::new(),
        },
        say,
    )
}

/// The dataset's marker after making it what `want` asks for: the existing dataset when its scale
/// fits, else (unless `want.no_seed`) a fresh seed at the asked scale, announced through `say`
/// because seeding changes the target database. A reseed keeps the previous seed, so only the
/// size changes.
pub fn ensure_scale(
    client: &mut postgres::Client,
    want: Wanted,
    say: &mut dyn FnMut(&str),
) -> Result<Marker, DatasetError> {
    if let Some(scale) = want.scale {
        validate_scale(scale)?;
    }
    let existing = status(client)?;
    let opts = match (&existing, want.scale) {
        (Some(marker), None) => return Ok(marker.clone()),
        (Some(marker), Some(asked)) if marker.scale == asked => return Ok(marker.clone()),
        (Some(marker), Some(asked)) => {
            if want.no_seed {
                return Err(DatasetError::ScaleMismatch {
                    seeded: marker.scale,
                    asked,
                });
            }
            let opts = SeedOptions {
                scale: asked,
                seed: marker.seed,
                stop: want.stop.clone(),
                ..SeedOptions::default()
            };
            say(&format!(
                "the pgstorm dataset is seeded at scale {}, -s asks for {asked}: reseeding scale \
                 {asked} (seed {}) into schema \"{SCHEMA}\"",
                marker.scale, opts.seed
            ));
            opts
        }
        (None, _) if want.no_seed => return Err(DatasetError::NotSeeded),
        (None, scale) => {
            let opts = SeedOptions {
                scale: scale.unwrap_or(MIN_SCALE),
                stop: want.stop.clone(),
                ..SeedOptions::default()
            };
            say(&format!(
                "no pgstorm dataset in the target database: seeding scale {} (seed {}) into schema \
                 \"{SCHEMA}\"{}",
                opts.scale,
                opts.seed,
                if scale.is_none() {
                    "; give -s N (or run `pgstorm seed --scale N`) for a bigger one"
                } else {
                    ""
                }
            ));
            opts
        }
    };
    disk::check(client, opts.scale, want.local)?;
    seed(client, &opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_the_30_days_before_2026() {
        assert_eq!(data_end().to_rfc3339(), "2026-01-01T00:00:00+00:00");
        assert_eq!(data_start().to_rfc3339(), "2025-12-02T00:00:00+00:00");
    }

    #[test]
    fn scale_bounds() {
        assert!(validate_scale(0).is_err());
        assert_eq!(validate_scale(1).unwrap(), 1);
        assert_eq!(validate_scale(100_000).unwrap(), 100_000);
        let err = validate_scale(100_001).unwrap_err().to_string();
        assert!(err.contains("100001") && err.contains("100000"), "{err}");
    }
}
