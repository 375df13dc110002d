//! Evaluation of parsed `\set` expressions with pgbench's semantics (evaluateExpr and
//! evalStandardFunc): a NULL argument makes every function and operator NULL except `IS` and
//! `debug`; integers are checked (overflow is an error), a double anywhere makes the operation
//! double (so `1.0/0` is Infinity, not an error); a double becomes an integer by rounding to
//! the nearest even (`rint`); `AND`/`OR`/`NOT` accept only booleans while `CASE` and `\if` take
//! any non-zero number as true; `a > b` evaluates `b` first, as pgbench rewrites it to `b < a`.
//! Random functions draw from the client's pgbench generator ([`PgPrng`]) with pgbench's
//! algorithms, so the same seed gives pgbench's values. Error messages are pgbench's own words.
//! Evaluation reads variable slots and never allocates except to describe an error or to print
//! `debug()`.

use super::{EvalError, Expr, Func, Op, Val};
use crate::workload::script::prng::PgPrng;
use crate::workload::script::vars::{format_double, Slot};

/// What evaluation reads: the variables and the client's random stream.
pub struct Env<'a> {
    /// Variable slots.
    pub vars: &'a [Slot],
    /// The client's pgbench random generator.
    pub rng: &'a mut PgPrng,
    /// Names of the slots, for error messages.
    pub names: &'a [String],
    /// What `debug()` prints before the value: the script and the command, as pgbench does.
    pub origin: (&'a str, usize),
}

/// pgbench's valueTypeName, for coercion errors.
fn type_name(v: Val) -> &'static str {
    match v {
        Val::Null => "null",
        Val::Bool(_) => "boolean",
        Val::Int(_) => "int",
        Val::Double(_) => "double",
    }
}

/// pgbench's coerceToInt: a double is rounded half to even and must fit a bigint.
fn to_int(v: Val) -> Result<i64, EvalError> {
    match v {
        Val::Int(i) => Ok(i),
        Val::Double(d) => {
            let r = d.round_ties_even();
            // FLOAT8_FITS_IN_INT64: [-2^63, 2^63).
            if r.is_nan() || !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&r) {
                Err(format!("double to int overflow for {}", format_fixed6(r)))
            } else {
                Ok(r as i64)
            }
        }
        other => Err(format!("cannot coerce {} to int", type_name(other))),
    }
}

fn to_double(v: Val) -> Result<f64, EvalError> {
    match v {
        Val::Int(i) => Ok(i as f64),
        Val::Double(d) => Ok(d),
        other => Err(format!("cannot coerce {} to double", type_name(other))),
    }
}

/// pgbench's coerceToBool: only a boolean is a boolean (for `AND`, `OR`, `NOT`).
pub fn to_bool(v: Val) -> Result<bool, EvalError> {
    match v {
        Val::Bool(b) => Ok(b),
        other => Err(format!("cannot coerce {} to boolean", type_name(other))),
    }
}

/// pgbench's valueTruth (for `CASE` and `\if`): NULL and zero are false.
pub fn truth(v: Val) -> bool {
    match v {
        Val::Null => false,
        Val::Bool(b) => b,
        Val::Int(i) => i != 0,
        Val::Double(d) => d != 0.0,
    }
}

/// C's `%f` as PostgreSQL's snprintf prints it (six decimals, NaN and Infinity spelled out).
fn format_fixed6(d: f64) -> String {
    if d.is_nan() {
        "NaN".into()
    } else if d.is_infinite() {
        if d > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        format!("{d:.6}")
    }
}

/// Evaluates `e`.
pub fn eval(e: &Expr, env: &mut Env<'_>) -> Result<Val, EvalError> {
    Ok(match e {
        Expr::Const(v) => *v,
        Expr::Var(slot) => {
            let name = || env.names.get(*slot).map(String::as_str).unwrap_or("?");
            match env.vars[*slot].value(name()) {
                Some(v) => v?,
                None => return Err(format!("undefined variable \"{}\"", name())),
            }
        }
        // pgbench parses `-x` as `0 - x` and `~x` as `-1 # x`.
        Expr::Neg(a) => binary(Op::Sub, Val::Int(0), eval(a, env)?)?,
        Expr::BitNot(a) => binary(Op::BitXor, Val::Int(-1), eval(a, env)?)?,
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
            // pgbench has only < and <=: `a > b` is `b < a`, so `b` is evaluated first.
            if matches!(op, Op::Gt | Op::Ge) {
                let y = eval(b, env)?;
                let x = eval(a, env)?;
                binary(*op, x, y)?
            } else {
                let x = eval(a, env)?;
                let y = eval(b, env)?;
                binary(*op, x, y)?
            }
        }
        Expr::Call(f, args) => call(*f, args, env)?,
        Expr::Case(arms, other) => {
            for (c, v) in arms {
                if truth(eval(c, env)?) {
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
    if x == Val::Null || y == Val::Null {
        return Ok(Val::Null);
    }
    match op {
        BitAnd | BitOr | BitXor | Shl | Shr => {
            let (a, b) = (to_int(x)?, to_int(y)?);
            Ok(Val::Int(match op {
                BitAnd => a & b,
                BitOr => a | b,
                BitXor => a ^ b,
                // pgbench shifts in C, where the hardware takes the count modulo 64.
                Shl => a.wrapping_shl(b as u32),
                _ => a.wrapping_shr(b as u32),
            }))
        }
        _ if op != Rem && (matches!(x, Val::Double(_)) || matches!(y, Val::Double(_))) => {
            let (a, b) = (to_double(x)?, to_double(y)?);
            Ok(match op {
                Add => Val::Double(a + b),
                Sub => Val::Double(a - b),
                Mul => Val::Double(a * b),
                Div => Val::Double(a / b),
                _ => compare(op, a, b),
            })
        }
        _ => {
            let (a, b) = (to_int(x)?, to_int(y)?);
            let out_of_range = |what: &str| format!("bigint {what} out of range");
            Ok(match op {
                Add => Val::Int(a.checked_add(b).ok_or_else(|| out_of_range("add"))?),
                Sub => Val::Int(a.checked_sub(b).ok_or_else(|| out_of_range("sub"))?),
                Mul => Val::Int(a.checked_mul(b).ok_or_else(|| out_of_range("mul"))?),
                Div | Rem => {
                    if b == 0 {
                        return Err("division by zero".into());
                    }
                    if op == Div {
                        Val::Int(a.checked_div(b).ok_or_else(|| out_of_range("div"))?)
                    } else {
                        // i64::MIN % -1 is 0, as pgbench special-cases it.
                        Val::Int(a.checked_rem(b).unwrap_or(0))
                    }
                }
                _ => compare(op, a, b),
            })
        }
    }
}

/// A comparison operator on two numbers of one type.
fn compare<T: PartialOrd>(op: Op, a: T, b: T) -> Val {
    Val::Bool(match op {
        Op::Eq => a == b,
        Op::Ne => a != b,
        Op::Lt => a < b,
        Op::Le => a <= b,
        Op::Gt => a > b,
        _ => a >= b,
    })
}

/// Smallest parameter of random_gaussian (pgbench's MIN_GAUSSIAN_PARAM).
const MIN_GAUSSIAN_PARAM: f64 = 2.0;
/// Bounds of random_zipfian's parameter (pgbench's MIN/MAX_ZIPFIAN_PARAM).
const MIN_ZIPFIAN_PARAM: f64 = 1.001;
const MAX_ZIPFIAN_PARAM: f64 = 1000.0;
/// pgbench evaluates at most this many arguments of one function (its MAX_FARGS).
pub const MAX_FARGS: usize = 16;
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

/// pgbench's permute(): a pseudorandom bijection of [0, size) keyed by `seed`: six rounds of
/// an odd multiply, xor and rotate on the overlapping lower and upper power-of-two halves,
/// then a random offset, all drawn from a generator seeded with `seed`.
pub fn permute(val: i64, isize: i64, seed: i64) -> i64 {
    if isize < 2 {
        return 0;
    }
    let mut rng = PgPrng::new(seed as u64);
    let size = isize as u64;
    let mut v = (val as u64) % size;
    // The largest power of two not above size, less one; size >= 2 so masklen >= 1.
    let masklen = 63 - size.leading_zeros();
    let mask = (1u64 << masklen) - 1;
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
        let r = rng.below_or_eq(size - 1);
        // v + r < 2 * size <= 2^64 only while size <= 2^63, which an i64 size guarantees.
        v = (v + r) % size;
    }
    v as i64
}

/// pgbench's range check of the random functions.
fn random_range(lo: i64, hi: i64) -> Result<(i64, i64), EvalError> {
    if lo > hi {
        return Err("empty range given to random".into());
    }
    if hi.checked_sub(lo).and_then(|d| d.checked_add(1)).is_none() {
        return Err("random range is too large".into());
    }
    Ok((lo, hi))
}

/// pgbench's `min + (int64) ((max - min + 1) * rand)`.
fn scaled(lo: i64, hi: i64, r: f64) -> i64 {
    lo.wrapping_add((((hi - lo + 1) as f64) * r) as i64)
}

/// pgbench's `debug()` line: the value with its type.
fn debug_line(origin: (&str, usize), v: Val) {
    let (script, command) = origin;
    match v {
        Val::Null => eprintln!("debug(script={script},command={command}): null"),
        Val::Bool(b) => eprintln!("debug(script={script},command={command}): boolean {b}"),
        Val::Int(i) => eprintln!("debug(script={script},command={command}): int {i}"),
        Val::Double(d) => eprintln!(
            "debug(script={script},command={command}): double {}",
            format_double(d)
        ),
    }
}

fn call(f: Func, args: &[Expr], env: &mut Env<'_>) -> Result<Val, EvalError> {
    let mut a = [Val::Null; MAX_FARGS];
    for (slot, e) in a.iter_mut().zip(args) {
        *slot = eval(e, env)?;
    }
    if args.len() > MAX_FARGS {
        return Err(format!(
            "too many function arguments, maximum is {MAX_FARGS}"
        ));
    }
    let a = &a[..args.len()];
    if f == Func::Debug {
        debug_line(env.origin, a[0]);
        return Ok(a[0]);
    }
    if a.contains(&Val::Null) {
        return Ok(Val::Null);
    }
    Ok(match f {
        Func::Abs => match a[0] {
            // C's `i < 0 ? -i : i`: the most negative bigint stays itself.
            Val::Int(i) => Val::Int(i.wrapping_abs()),
            v => Val::Double(to_double(v)?.abs()),
        },
        Func::Debug => unreachable!("handled above"),
        Func::Double => Val::Double(to_double(a[0])?),
        Func::Int => Val::Int(to_int(a[0])?),
        Func::Exp => Val::Double(to_double(a[0])?.exp()),
        Func::Ln => Val::Double(to_double(a[0])?.ln()),
        Func::Sqrt => Val::Double(to_double(a[0])?.sqrt()),
        Func::Pi => Val::Double(std::f64::consts::PI),
        Func::Pow => Val::Double(to_double(a[0])?.powf(to_double(a[1])?)),
        Func::Mod => binary(Op::Rem, a[0], a[1])?,
        Func::Greatest | Func::Least => {
            let greatest = f == Func::Greatest;
            if a.iter().any(|v| matches!(v, Val::Double(_))) {
                let mut acc = to_double(a[0])?;
                for v in &a[1..] {
                    let d = to_double(*v)?;
                    // C's Max(a, b) is `a > b ? a : b` (Min alike), so a NaN gives way.
                    let keep = if greatest { acc > d } else { acc < d };
                    if !keep {
                        acc = d;
                    }
                }
                Val::Double(acc)
            } else {
                let mut acc = to_int(a[0])?;
                for v in &a[1..] {
                    let i = to_int(*v)?;
                    acc = if greatest { acc.max(i) } else { acc.min(i) };
                }
                Val::Int(acc)
            }
        }
        Func::HashMurmur2 | Func::HashFnv1a => {
            let (v, seed) = (to_int(a[0])?, to_int(a[1])? as u64);
            Val::Int(if f == Func::HashFnv1a {
                hash_fnv1a(v, seed)
            } else {
                hash_murmur2(v, seed)
            })
        }
        Func::Permute => {
            let (v, size, seed) = (to_int(a[0])?, to_int(a[1])?, to_int(a[2])?);
            if size <= 0 {
                return Err("permute size parameter must be greater than zero".into());
            }
            Val::Int(permute(v, size, seed))
        }
        Func::Random => {
            let (lo, hi) = random_range(to_int(a[0])?, to_int(a[1])?)?;
            Val::Int(lo.wrapping_add(env.rng.below_or_eq(hi.wrapping_sub(lo) as u64) as i64))
        }
        Func::RandomExponential | Func::RandomGaussian | Func::RandomZipfian => {
            let (lo, hi) = random_range(to_int(a[0])?, to_int(a[1])?)?;
            let param = to_double(a[2])?;
            Val::Int(match f {
                Func::RandomGaussian => {
                    if param < MIN_GAUSSIAN_PARAM {
                        return Err(format!(
                            "gaussian parameter must be at least {} (not {})",
                            format_fixed6(MIN_GAUSSIAN_PARAM),
                            format_fixed6(param)
                        ));
                    }
                    gaussian(env.rng, lo, hi, param)
                }
                Func::RandomZipfian => {
                    if !(MIN_ZIPFIAN_PARAM..=MAX_ZIPFIAN_PARAM).contains(&param) {
                        return Err(format!(
                            "zipfian parameter must be in range [{MIN_ZIPFIAN_PARAM:.3}, {MAX_ZIPFIAN_PARAM:.0}] (not {})",
                            format_fixed6(param)
                        ));
                    }
                    lo + (zipfian(env.rng, hi - lo + 1, param) - 1)
                }
                _ => {
                    if param <= 0.0 {
                        return Err(format!(
                            "exponential parameter must be greater than zero (not {})",
                            format_fixed6(param)
                        ));
                    }
                    let cut = (-param).exp();
                    let uniform = 1.0 - env.rng.next_f64();
                    scaled(lo, hi, -(cut + (1.0 - cut) * uniform).ln() / param)
                }
            })
        }
    })
}

/// pgbench's getGaussianRand: Box-Muller on two draws in (0, 1], redrawn until the normal
/// value lies in [-param, param).
fn gaussian(rng: &mut PgPrng, lo: i64, hi: i64, param: f64) -> i64 {
    let stdev = loop {
        let u1 = 1.0 - rng.next_f64();
        let u2 = 1.0 - rng.next_f64();
        let s = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).sin();
        if !(s < -param || s >= param) {
            break s;
        }
    };
    scaled(lo, hi, (stdev + param) / (param * 2.0))
}

/// pgbench's computeIterativeZipfian (rejection method), a value in [1, n].
fn zipfian(rng: &mut PgPrng, n: i64, s: f64) -> i64 {
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
