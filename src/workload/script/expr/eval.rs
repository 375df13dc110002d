//! Evaluation of parsed `\set` expressions with pgbench's semantics: checked bigint arithmetic,
//! int/double promotion, lazy `AND`/`OR`/`CASE`, and pgbench's random distributions and hashes
//! (same algorithms and parameter limits). Evaluation reads variable slots and the client's random
//! stream, and never allocates except to describe an error.

use super::{EvalError, Expr, Func, Op, Val};
use crate::rng::Rng;
use crate::workload::script::vars::Slot;

/// What evaluation reads: the variables and the client's random stream.
pub struct Env<'a> {
    /// Variable slots.
    pub vars: &'a [Slot],
    /// The client's random stream.
    pub rng: &'a mut Rng,
    /// Names of the slots, for error messages.
    pub names: &'a [String],
    /// Default seed of hash() and permute() (pgbench's `:default_seed`).
    pub seed: i64,
}

fn to_int(v: Val) -> Result<i64, EvalError> {
    match v {
        Val::Int(i) => Ok(i),
        Val::Double(d) => {
            if d.is_nan() || !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&d) {
                Err(format!("double {d} is out of bigint range"))
            } else {
                Ok(d as i64)
            }
        }
        Val::Bool(_) => Err("cannot coerce boolean to int".into()),
        Val::Null => Err("cannot coerce NULL to int".into()),
    }
}

fn to_double(v: Val) -> Result<f64, EvalError> {
    match v {
        Val::Int(i) => Ok(i as f64),
        Val::Double(d) => Ok(d),
        Val::Bool(_) => Err("cannot coerce boolean to double".into()),
        Val::Null => Err("cannot coerce NULL to double".into()),
    }
}

/// pgbench's boolean coercion: numbers are true when non-zero; NULL is an error.
pub fn to_bool(v: Val) -> Result<bool, EvalError> {
    match v {
        Val::Bool(b) => Ok(b),
        Val::Int(i) => Ok(i != 0),
        Val::Double(d) => Ok(d != 0.0),
        Val::Null => Err("cannot coerce NULL to boolean".into()),
    }
}

fn overflow() -> EvalError {
    "bigint out of range".into()
}

/// Evaluates `e`.
pub fn eval(e: &Expr, env: &mut Env<'_>) -> Result<Val, EvalError> {
    Ok(match e {
        Expr::Const(v) => *v,
        Expr::Var(slot) => match env.vars[*slot].value() {
            Some(v) => v?,
            None => {
                return Err(format!(
                    "undefined variable \"{}\"",
                    env.names.get(*slot).map(String::as_str).unwrap_or("?")
                ))
            }
        },
        Expr::Neg(a) => match eval(a, env)? {
            Val::Int(i) => Val::Int(i.checked_neg().ok_or_else(overflow)?),
            Val::Double(d) => Val::Double(-d),
            other => Val::Double(-to_double(other)?),
        },
        Expr::BitNot(a) => Val::Int(!to_int(eval(a, env)?)?),
        Expr::Not(a) => match eval(a, env)? {
            Val::Null => Val::Null,
            v => Val::Bool(!to_bool(v)?),
        },
        Expr::And(a, b) => match eval(a, env)? {
            Val::Null => Val::Null,
            v if !to_bool(v)? => Val::Bool(false),
            _ => match eval(b, env)? {
                Val::Null => Val::Null,
                v => Val::Bool(to_bool(v)?),
            },
        },
        Expr::Or(a, b) => match eval(a, env)? {
            Val::Null => Val::Null,
            v if to_bool(v)? => Val::Bool(true),
            _ => match eval(b, env)? {
                Val::Null => Val::Null,
                v => Val::Bool(to_bool(v)?),
            },
        },
        Expr::Is(a, what, negated) => {
            let v = eval(a, env)?;
            let r = match what {
                Val::Null => v == Val::Null,
                Val::Bool(t) => v == Val::Bool(*t),
                _ => false,
            };
            Val::Bool(r != *negated)
        }
        Expr::Bin(op, a, b) => {
            let (x, y) = (eval(a, env)?, eval(b, env)?);
            binary(*op, x, y)?
        }
        Expr::Call(f, args) => call(*f, args, env)?,
        Expr::Case(arms, other) => {
            for (c, v) in arms {
                let cv = eval(c, env)?;
                if cv != Val::Null && to_bool(cv)? {
                    return eval(v, env);
                }
            }
            match other {
                Some(o) => eval(o, env)?,
                None => Val::Null,
            }
        }
    })
}

fn binary(op: Op, x: Val, y: Val) -> Result<Val, EvalError> {
    use Op::*;
    match op {
        BitAnd | BitOr | BitXor | Shl | Shr => {
            let (a, b) = (to_int(x)?, to_int(y)?);
            Ok(Val::Int(match op {
                BitAnd => a & b,
                BitOr => a | b,
                BitXor => a ^ b,
                // pgbench shifts in C: out-of-range counts are undefined there; here they give 0.
                Shl => u32::try_from(b)
                    .ok()
                    .and_then(|s| a.checked_shl(s))
                    .unwrap_or(0),
                _ => u32::try_from(b)
                    .ok()
                    .and_then(|s| a.checked_shr(s))
                    .unwrap_or(if a < 0 { -1 } else { 0 }),
            }))
        }
        Add | Sub | Mul | Div | Rem | Eq | Ne | Lt | Le | Gt | Ge => {
            if x == Val::Null || y == Val::Null {
                return Ok(Val::Null);
            }
            if let (Val::Int(a), Val::Int(b)) = (x, y) {
                return Ok(match op {
                    Add => Val::Int(a.checked_add(b).ok_or_else(overflow)?),
                    Sub => Val::Int(a.checked_sub(b).ok_or_else(overflow)?),
                    Mul => Val::Int(a.checked_mul(b).ok_or_else(overflow)?),
                    Div | Rem => {
                        if b == 0 {
                            return Err("division by zero".into());
                        }
                        // i64::MIN / -1 overflows; pgbench special-cases it the same way.
                        if op == Div {
                            Val::Int(a.checked_div(b).ok_or_else(overflow)?)
                        } else {
                            Val::Int(a.checked_rem(b).unwrap_or(0))
                        }
                    }
                    Eq => Val::Bool(a == b),
                    Ne => Val::Bool(a != b),
                    Lt => Val::Bool(a < b),
                    Le => Val::Bool(a <= b),
                    Gt => Val::Bool(a > b),
                    _ => Val::Bool(a >= b),
                });
            }
            if op == Rem {
                return Err("the % operator needs integers".into());
            }
            let (a, b) = (to_double(x)?, to_double(y)?);
            Ok(match op {
                Add => Val::Double(a + b),
                Sub => Val::Double(a - b),
                Mul => Val::Double(a * b),
                Div => {
                    if b == 0.0 {
                        return Err("division by zero".into());
                    }
                    Val::Double(a / b)
                }
                Eq => Val::Bool(a == b),
                Ne => Val::Bool(a != b),
                Lt => Val::Bool(a < b),
                Le => Val::Bool(a <= b),
                Gt => Val::Bool(a > b),
                _ => Val::Bool(a >= b),
            })
        }
    }
}

/// Smallest parameter of random_gaussian (pgbench's MIN_GAUSSIAN_PARAM).
const MIN_GAUSSIAN_PARAM: f64 = 2.0;
/// Bounds of random_zipfian's parameter (pgbench's MIN/MAX_ZIPFIAN_PARAM).
const MIN_ZIPFIAN_PARAM: f64 = 1.001;
const MAX_ZIPFIAN_PARAM: f64 = 1000.0;
/// pgbench's hash constants.
const FNV_PRIME: u64 = 0x100000001b3;
const FNV_OFFSET_BASIS: u64 = 0xcbf29ce484222325;
const MM2_MUL: u64 = 0xc6a4a7935bd1e995;
const MM2_MUL_TIMES_8: u64 = 0x35253c9ade8f4ca8;
const MM2_ROT: u32 = 47;

/// pgbench's FNV-1a over the 8 bytes of `val`.
pub fn hash_fnv1a(mut val: i64, seed: u64) -> i64 {
    let mut result = FNV_OFFSET_BASIS ^ seed;
    for _ in 0..8 {
        let octet = (val & 0xff) as u64;
        val >>= 8;
        result ^= octet;
        result = result.wrapping_mul(FNV_PRIME);
    }
    result as i64
}

/// pgbench's 64-bit MurmurHash2 of `val`.
pub fn hash_murmur2(val: i64, seed: u64) -> i64 {
    let mut result = seed ^ MM2_MUL_TIMES_8;
    let mut k = val as u64;
    k = k.wrapping_mul(MM2_MUL);
    k ^= k >> MM2_ROT;
    k = k.wrapping_mul(MM2_MUL);
    result ^= k;
    result = result.wrapping_mul(MM2_MUL);
    result ^= result >> MM2_ROT;
    result = result.wrapping_mul(MM2_MUL);
    result ^= result >> MM2_ROT;
    result as i64
}

/// pgbench's permute(): a pseudorandom bijection of [0, size) keyed by `seed`.
pub fn permute(val: i64, isize: i64, seed: i64) -> i64 {
    if isize < 2 {
        return 0;
    }
    let mut rng = Rng::new(seed as u64);
    let size = isize as u64;
    let mut v = (val as u64) % size;
    let masklen = 63 - size.leading_zeros();
    let mask = (1u64 << masklen) - 1;
    // size >= 2, so masklen >= 1.
    let rot = |x: u64| ((x << 1) & mask) | (x >> (masklen - 1));
    for _ in 0..6 {
        let m = (rng.next_u64() & mask) | 1;
        let r = rng.next_u64() & mask;
        if v <= mask {
            v = (v.wrapping_mul(m) ^ r) & mask;
            v = rot(v);
        }
        let m = (rng.next_u64() & mask) | 1;
        let r = rng.next_u64() & mask;
        let mut t = size - 1 - v;
        if t <= mask {
            t = (t.wrapping_mul(m) ^ r) & mask;
            t = rot(t);
            v = size - 1 - t;
        }
        let r = ((rng.next_u64() as u128 * size as u128) >> 64) as u64;
        v = ((v as u128 + r as u128) % size as u128) as u64;
    }
    v as i64
}

fn random_range(lo: i64, hi: i64) -> Result<(i64, i64), EvalError> {
    if hi < lo {
        return Err(format!("empty range given to random: [{lo}, {hi}]"));
    }
    if (hi as i128 - lo as i128) >= i64::MAX as i128 {
        return Err(format!("random range [{lo}, {hi}] is too large"));
    }
    Ok((lo, hi))
}

fn call(f: Func, args: &[Expr], env: &mut Env<'_>) -> Result<Val, EvalError> {
    // Every function has at most three arguments except greatest/least, which fold.
    if matches!(f, Func::Greatest | Func::Least) {
        let mut acc = eval(&args[0], env)?;
        for a in &args[1..] {
            let v = eval(a, env)?;
            acc = match (acc, v) {
                (Val::Null, _) | (_, Val::Null) => Val::Null,
                (Val::Int(x), Val::Int(y)) => Val::Int(if f == Func::Greatest {
                    x.max(y)
                } else {
                    x.min(y)
                }),
                (x, y) => {
                    let (x, y) = (to_double(x)?, to_double(y)?);
                    Val::Double(if f == Func::Greatest {
                        x.max(y)
                    } else {
                        x.min(y)
                    })
                }
            };
        }
        return Ok(acc);
    }
    let mut a = [Val::Null; 3];
    for (slot, e) in a.iter_mut().zip(args) {
        *slot = eval(e, env)?;
    }
    Ok(match f {
        Func::Abs => match a[0] {
            Val::Int(i) => Val::Int(i.checked_abs().ok_or_else(overflow)?),
            v => Val::Double(to_double(v)?.abs()),
        },
        Func::Debug => {
            eprintln!("debug(script): {:?}", a[0]);
            a[0]
        }
        Func::Double => Val::Double(to_double(a[0])?),
        Func::Int => Val::Int(to_int(a[0])?),
        Func::Exp => Val::Double(to_double(a[0])?.exp()),
        Func::Ln => Val::Double(to_double(a[0])?.ln()),
        Func::Sqrt => Val::Double(to_double(a[0])?.sqrt()),
        Func::Pi => Val::Double(std::f64::consts::PI),
        Func::Pow => Val::Double(to_double(a[0])?.powf(to_double(a[1])?)),
        Func::Mod => {
            let (x, y) = (to_int(a[0])?, to_int(a[1])?);
            if y == 0 {
                return Err("division by zero".into());
            }
            Val::Int(x.checked_rem(y).unwrap_or(0))
        }
        Func::Hash | Func::HashMurmur2 | Func::HashFnv1a => {
            let v = to_int(a[0])?;
            let seed = if args.len() > 1 {
                to_int(a[1])?
            } else {
                env.seed
            } as u64;
            Val::Int(if f == Func::HashFnv1a {
                hash_fnv1a(v, seed)
            } else {
                hash_murmur2(v, seed)
            })
        }
        Func::Permute => {
            let size = to_int(a[1])?;
            if size <= 0 {
                return Err("permute size parameter must be greater than zero".into());
            }
            let seed = if args.len() > 2 {
                to_int(a[2])?
            } else {
                env.seed
            };
            Val::Int(permute(to_int(a[0])?, size, seed))
        }
        Func::Random => {
            let (lo, hi) = random_range(to_int(a[0])?, to_int(a[1])?)?;
            Val::Int(env.rng.range_i64(lo, hi))
        }
        Func::RandomExponential => {
            let (lo, hi) = random_range(to_int(a[0])?, to_int(a[1])?)?;
            let param = to_double(a[2])?;
            if param <= 0.0 || param.is_nan() {
                return Err(format!(
                    "exponential parameter must be greater than zero (got {param})"
                ));
            }
            let cut = (-param).exp();
            let uniform = 1.0 - env.rng.next_f64();
            let r = -(cut + (1.0 - cut) * uniform).ln() / param;
            Val::Int(scaled(lo, hi, r))
        }
        Func::RandomGaussian => {
            let (lo, hi) = random_range(to_int(a[0])?, to_int(a[1])?)?;
            let param = to_double(a[2])?;
            if param.is_nan() || param < MIN_GAUSSIAN_PARAM {
                return Err(format!(
                    "gaussian parameter must be at least {MIN_GAUSSIAN_PARAM} (got {param})"
                ));
            }
            let stdev = loop {
                let r1 = 1.0 - env.rng.next_f64();
                let r2 = env.rng.next_f64();
                let s = (-2.0 * r1.ln()).sqrt() * (2.0 * std::f64::consts::PI * r2).sin();
                if s >= -param && s < param {
                    break s;
                }
            };
            let r = (stdev + param) / (param * 2.0);
            Val::Int(scaled(lo, hi, r))
        }
        Func::RandomZipfian => {
            let (lo, hi) = random_range(to_int(a[0])?, to_int(a[1])?)?;
            let s = to_double(a[2])?;
            if !(MIN_ZIPFIAN_PARAM..=MAX_ZIPFIAN_PARAM).contains(&s) {
                return Err(format!(
                    "zipfian parameter must be in range [{MIN_ZIPFIAN_PARAM:.3}, {MAX_ZIPFIAN_PARAM:.0}] (got {s})"
                ));
            }
            Val::Int(lo + (zipfian(env.rng, hi - lo + 1, s) - 1))
        }
        Func::Greatest | Func::Least => unreachable!("handled above"),
    })
}

/// `lo + (hi - lo + 1) * r` for r in [0, 1), kept inside [lo, hi] despite float rounding.
fn scaled(lo: i64, hi: i64, r: f64) -> i64 {
    let off = ((hi - lo + 1) as f64 * r) as i64;
    lo.saturating_add(off).min(hi)
}

/// pgbench's computeIterativeZipfian (rejection method), a value in [1, n].
fn zipfian(rng: &mut Rng, n: i64, s: f64) -> i64 {
    if n <= 1 {
        return 1;
    }
    let b = 2f64.powf(s - 1.0);
    loop {
        let u = rng.next_f64();
        let v = rng.next_f64();
        let x = u.powf(-1.0 / (s - 1.0)).floor();
        let t = (1.0 + 1.0 / x).powf(s - 1.0);
        if v * x * (t - 1.0) / (b - 1.0) <= t / b && x <= n as f64 {
            return x as i64;
        }
    }
}
