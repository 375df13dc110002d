//! pgbench's random generator: PostgreSQL's pg_prng (xoroshiro128** seeded through SplitMix64)
//! and pgbench 15's seeding of it, so a script drawing `random()`, `permute()` or the other
//! random functions gets, for the same `--random-seed`, the values pgbench gets.
//!
//! Invariants: the output for a seed never changes (it is pgbench's, not ours to tune); a state
//! is never all zeroes (that is the generator's fixed point, replaced as pg_prng does). pgbench
//! seeds one base sequence from the run's seed and takes, in order, one draw per client (that
//! client's own generator) and then one draw for `:default_seed`; [`client`] and
//! [`default_seed`] reproduce that order. The engine's own generator (`crate::rng`) stays
//! separate: the POS workloads' determinism does not depend on this one.

/// xoroshiro128** state, as PostgreSQL's `pg_prng_state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgPrng {
    s0: u64,
    s1: u64,
}

use crate::rng::splitmix64;

impl PgPrng {
    /// A generator seeded from `seed` (pg_prng_seed).
    pub fn new(seed: u64) -> PgPrng {
        let mut sm = seed;
        let s0 = splitmix64(&mut sm);
        let s1 = splitmix64(&mut sm);
        if s0 == 0 && s1 == 0 {
            // Knuth's LCG constants, the non-zero state pg_prng substitutes.
            PgPrng {
                s0: 0x5851_F42D_4C95_7F2D,
                s1: 0x1405_7B7E_F767_814F,
            }
        } else {
            PgPrng { s0, s1 }
        }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s0 = self.s0;
        let sx = self.s1 ^ s0;
        let val = s0.wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        self.s0 = s0.rotate_left(24) ^ sx ^ (sx << 16);
        self.s1 = sx.rotate_left(37);
        val
    }

    /// A uniform value in `[0, range]` by bitmask rejection (pg_prng_uint64_range from 0).
    #[inline]
    pub fn below_or_eq(&mut self, range: u64) -> u64 {
        if range == 0 {
            return 0;
        }
        let shift = range.leading_zeros();
        loop {
            let v = self.next_u64() >> shift;
            if v <= range {
                return v;
            }
        }
    }

    /// A uniform double in [0, 1) with 52 random bits (pg_prng_double).
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 12) as f64 / (1u64 << 52) as f64
    }
}

/// The generator of client `client_id` in a run seeded with `seed`.
pub fn client(seed: u64, client_id: usize) -> PgPrng {
    let mut base = PgPrng::new(seed);
    for _ in 0..client_id {
        base.next_u64();
    }
    PgPrng::new(base.next_u64())
}

/// pgbench's `:default_seed` for a run of `clients` clients seeded with `seed`: the draw that
/// follows the clients' own seeds.
pub fn default_seed(seed: u64, clients: usize) -> i64 {
    let mut base = PgPrng::new(seed);
    for _ in 0..clients {
        base.next_u64();
    }
    base.next_u64() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_stays_inside_and_reaches_both_ends() {
        let mut r = PgPrng::new(3);
        let (mut lo, mut hi) = (false, false);
        for _ in 0..10_000 {
            let v = r.below_or_eq(6);
            assert!(v <= 6);
            lo |= v == 0;
            hi |= v == 6;
        }
        assert!(lo && hi);
        assert_eq!(r.below_or_eq(0), 0);
        let d = r.next_f64();
        assert!((0.0..1.0).contains(&d));
    }
}
