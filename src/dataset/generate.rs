//! Deterministic generation of the POS rows, and their binary COPY encoding. No database here.
//!
//! Invariants:
//! - A row depends only on `(seed, scale)` and on the fixed-size chunk it belongs to: chunk `k` of
//!   orders draws from `Rng::stream(seed, k)`, chunk `k` of partners from
//!   `Rng::stream(seed, PARTNER_STREAM + k)`. Chunks can therefore be generated in any order and on
//!   any number of threads and the tables come out byte-for-byte identical. Changing a chunk size,
//!   a stream number or the order of draws changes every seeded dataset: treat them as frozen.
//! - Money is integer cents throughout: `price_subtotal = qty * price_unit` is exact and
//!   `amount_total` is exactly the sum of its lines' `price_subtotal`.
//! - Order ids follow `create_date` (ids grow with time, as in a real shop): order `i` of `N` is
//!   placed by stratified inverse-CDF sampling at quantile `(i + u) / N` of the time-of-day and
//!   day-of-week weighted density over the data window.
//! - Rows are encoded in COPY's binary format (`FORMAT binary`), so the server parses no text:
//!   `bigint`/`integer` as big-endian integers, `timestamptz` as microseconds since 2000-01-01
//!   UTC, `numeric` as base-10000 digits with display scale 2 (what the columns' typmod keeps),
//!   `text` as its bytes. The values are exactly those the text format gave (`12.34`, `3.00`,
//!   whole seconds in UTC); a stream is [`COPY_BINARY_HEADER`], the tuples, then
//!   [`COPY_BINARY_TRAILER`].

use std::io::Write;

use crate::rng::Rng;

/// Orders per chunk (one RNG stream each). Frozen: changing it changes every dataset.
pub(crate) const ORDER_CHUNK: u64 = 1_000;
/// Partners per chunk (one RNG stream each). Frozen: changing it changes every dataset.
pub(crate) const PARTNER_CHUNK: u64 = 1_000;
/// Stream numbers at and above this belong to partner chunks; order chunks use `0..` (at most
/// 10^5 of them at the largest scale), so the two never collide.
const PARTNER_STREAM: u64 = 1 << 48;
/// The stream that draws the product catalogue's prices.
const CATALOGUE_STREAM: u64 = (1 << 48) - 1;
/// Products in the catalogue (`product_id` 1..=PRODUCTS), whatever the scale.
pub(crate) const PRODUCTS: u64 = 2_000;
/// Share of orders sold to no known customer (`partner_id` NULL), as at a real till.
const ANONYMOUS_SHARE: f64 = 0.08;

/// Relative order volume per hour of day (UTC is the shop's local time): closed at night, a lunch
/// peak and an after-work peak.
const HOUR_WEIGHTS: [f64; 24] = [
    0.02, 0.01, 0.01, 0.01, 0.01, 0.02, 0.05, 0.30, 0.80, 1.20, 1.50, 1.80, 2.40, 2.20, 1.50, 1.40,
    1.60, 2.00, 2.20, 1.60, 0.90, 0.40, 0.15, 0.05,
];
/// Relative order volume per weekday, Monday first: busy Friday and Saturday, quiet Sunday.
const WEEKDAY_WEIGHTS: [f64; 7] = [0.9, 0.9, 1.0, 1.0, 1.2, 1.4, 0.6];
/// Lines per order 1..=5, symmetric so the mean is 3.
const LINE_COUNT_WEIGHTS: [f64; 5] = [0.15, 0.20, 0.30, 0.20, 0.15];
/// Quantity 1..=5: most lines sell one item.
const QTY_WEIGHTS: [f64; 5] = [0.55, 0.20, 0.12, 0.08, 0.05];
/// Order states and their shares (Odoo's POS vocabulary).
const STATES: [(&str, f64); 4] = [
    ("done", 0.85),
    ("paid", 0.08),
    ("invoiced", 0.05),
    ("cancel", 0.02),
];

const FIRST_NAMES: [&str; 32] = [
    "Anna", "Ben", "Chloe", "David", "Emma", "Felix", "Grace", "Hugo", "Ines", "Jonas", "Karin",
    "Leo", "Maria", "Noah", "Olga", "Paul", "Quentin", "Rosa", "Sami", "Tara", "Umar", "Vera",
    "Willem", "Xenia", "Yusuf", "Zoe", "Lucas", "Mila", "Omar", "Lena", "Ravi", "Sofia",
];
const LAST_NAMES: [&str; 32] = [
    "Adams", "Baker", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ivanov",
    "Jensen", "Kowalski", "Lambert", "Martin", "Novak", "Olsen", "Peeters", "Quinn", "Rossi",
    "Schmidt", "Torres", "Urban", "Vargas", "Weber", "Young", "Zimmer", "Moreau", "Nagy", "Silva",
    "Horvat", "Berg", "Janssens", "Keller",
];
/// Cities, most frequent first (drawn with a skew toward the front).
const CITIES: [&str; 16] = [
    "Brussels",
    "Antwerp",
    "Ghent",
    "Liege",
    "Namur",
    "Leuven",
    "Bruges",
    "Mons",
    "Charleroi",
    "Hasselt",
    "Mechelen",
    "Ostend",
    "Kortrijk",
    "Wavre",
    "Arlon",
    "Tournai",
];

/// Everything the chunk generators share for one `(scale, seed)`: counts, the data window and the
/// precomputed time density and price list.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) seed: u64,
    pub(crate) partners: u64,
    pub(crate) orders: u64,
    /// Data window start, seconds since the Unix epoch (UTC).
    pub(crate) start: i64,
    /// Cumulative order weight at the end of each hour of the window.
    cumulative: Vec<f64>,
    /// Price in cents of product `id`, at index `id - 1`.
    prices: Vec<i64>,
}

/// One generated order line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) product_id: i32,
    pub(crate) qty: i64,
    pub(crate) price_cents: i64,
}

impl Line {
    /// `qty * price_unit`, exact in cents.
    pub(crate) fn subtotal_cents(&self) -> i64 {
        self.qty * self.price_cents
    }
}

/// One generated order; its lines are `OrderChunk::lines[first_line..first_line + line_count]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Order {
    pub(crate) id: i64,
    pub(crate) partner_id: Option<i64>,
    /// Seconds since the Unix epoch (UTC).
    pub(crate) create_date: i64,
    pub(crate) amount_cents: i64,
    pub(crate) state: &'static str,
    pub(crate) first_line: usize,
    pub(crate) line_count: usize,
}

/// The orders of one chunk with all their lines, in id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrderChunk {
    pub(crate) orders: Vec<Order>,
    pub(crate) lines: Vec<Line>,
}

/// One generated customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Partner {
    pub(crate) id: i64,
    pub(crate) first: &'static str,
    pub(crate) last: &'static str,
    pub(crate) has_email: bool,
    pub(crate) city: &'static str,
    pub(crate) create_date: i64,
}

impl Plan {
    /// The plan for `scale` (already validated) and `seed`; the window is `days` days ending at
    /// `end` (Unix seconds).
    pub(crate) fn new(scale: u32, seed: u64, end: i64, days: i64) -> Plan {
        let start = end - days * 86_400;
        let mut cumulative = Vec::with_capacity((days * 24) as usize);
        let mut total = 0.0;
        for hour in 0..days * 24 {
            let t = start + hour * 3_600;
            let epoch_day = t.div_euclid(86_400);
            // 1970-01-01 was a Thursday: +3 makes Monday 0.
            let weekday = (epoch_day + 3).rem_euclid(7) as usize;
            let hour_of_day = (t.rem_euclid(86_400) / 3_600) as usize;
            total += WEEKDAY_WEIGHTS[weekday] * HOUR_WEIGHTS[hour_of_day];
            cumulative.push(total);
        }
        let mut rng = Rng::stream(seed, CATALOGUE_STREAM);
        let prices = (0..PRODUCTS).map(|_| shop_price(&mut rng)).collect();
        Plan {
            seed,
            partners: 100 * u64::from(scale),
            orders: 1_000 * u64::from(scale),
            start,
            cumulative,
            prices,
        }
    }

    /// Number of order chunks.
    pub(crate) fn order_chunks(&self) -> u64 {
        self.orders.div_ceil(ORDER_CHUNK)
    }

    /// Number of partner chunks.
    pub(crate) fn partner_chunks(&self) -> u64 {
        self.partners.div_ceil(PARTNER_CHUNK)
    }

    /// A time in the window at quantile `q` in [0, 1) of the order density.
    fn time_at(&self, q: f64) -> i64 {
        let total = *self
            .cumulative
            .last()
            .expect("window has at least one hour");
        let target = q * total;
        let hour = self
            .cumulative
            .partition_point(|&c| c <= target)
            .min(self.cumulative.len() - 1);
        let before = if hour == 0 {
            0.0
        } else {
            self.cumulative[hour - 1]
        };
        let weight = self.cumulative[hour] - before;
        let within = ((target - before) / weight * 3_600.0).clamp(0.0, 3_599.0) as i64;
        self.start + hour as i64 * 3_600 + within
    }

    /// Generates order chunk `k` (orders `k * ORDER_CHUNK + 1 ..`) with its lines.
    pub(crate) fn order_chunk(&self, k: u64) -> OrderChunk {
        let first = k * ORDER_CHUNK;
        let last = (first + ORDER_CHUNK).min(self.orders);
        let mut rng = Rng::stream(self.seed, k);
        let mut orders = Vec::with_capacity((last - first) as usize);
        let mut lines = Vec::with_capacity((last - first) as usize * 3);
        for i in first..last {
            let create_date = self.time_at((i as f64 + rng.next_f64()) / self.orders as f64);
            let partner_id = if rng.next_f64() < ANONYMOUS_SHARE {
                None
            } else {
                Some(skewed_pick(&mut rng, self.partners))
            };
            let state = STATES[weighted(&mut rng, &STATES.map(|(_, w)| w))].0;
            let line_count = weighted(&mut rng, &LINE_COUNT_WEIGHTS) + 1;
            let first_line = lines.len();
            let mut amount_cents = 0;
            for _ in 0..line_count {
                let product_id = skewed_pick(&mut rng, PRODUCTS);
                let line = Line {
                    product_id: product_id as i32,
                    qty: weighted(&mut rng, &QTY_WEIGHTS) as i64 + 1,
                    price_cents: self.prices[product_id as usize - 1],
                };
                amount_cents += line.subtotal_cents();
                lines.push(line);
            }
            orders.push(Order {
                id: i as i64 + 1,
                partner_id,
                create_date,
                amount_cents,
                state,
                first_line,
                line_count,
            });
        }
        OrderChunk { orders, lines }
    }

    /// Generates partner chunk `k` (partners `k * PARTNER_CHUNK + 1 ..`).
    pub(crate) fn partner_chunk(&self, k: u64) -> Vec<Partner> {
        let first = k * PARTNER_CHUNK;
        let last = (first + PARTNER_CHUNK).min(self.partners);
        let mut rng = Rng::stream(self.seed, PARTNER_STREAM + k);
        (first..last)
            .map(|i| {
                let first = FIRST_NAMES[rng.range_i64(0, FIRST_NAMES.len() as i64 - 1) as usize];
                let last = LAST_NAMES[rng.range_i64(0, LAST_NAMES.len() as i64 - 1) as usize];
                let has_email = rng.next_f64() < 0.85;
                let u = rng.next_f64();
                let city = CITIES[(u * u * CITIES.len() as f64) as usize];
                // Customers signed up during the three years before the window.
                let create_date = self.start - rng.range_i64(3_600, 3 * 365 * 86_400);
                Partner {
                    id: i as i64 + 1,
                    first,
                    last,
                    has_email,
                    city,
                    create_date,
                }
            })
            .collect()
    }
}

/// A price like a shop's, in cents: 0.50..200.00, log-uniform (median about 10.00), and above
/// 5.00 ending in 9 cents as price tags do.
fn shop_price(rng: &mut Rng) -> i64 {
    let euros = 0.5 * 400f64.powf(rng.next_f64());
    let cents = (euros * 100.0).round() as i64;
    if cents > 500 {
        cents / 10 * 10 + 9
    } else {
        cents
    }
    .clamp(50, 20_000)
}

/// An index in `0..weights.len()` drawn with the given relative weights.
fn weighted(rng: &mut Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = rng.next_f64() * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

/// An id in `1..=n` with a heavy head (the `u^3` draw gives the top 10% of ids ~46% of picks),
/// scattered over the id range by a multiplicative permutation so the regulars are not simply the
/// lowest ids. 1_000_003 is prime and larger than any scale, so it is coprime with `n`.
fn skewed_pick(rng: &mut Rng, n: u64) -> i64 {
    let u = rng.next_f64();
    let rank = ((u * u * u * n as f64) as u64).min(n - 1);
    ((rank * 1_000_003) % n) as i64 + 1
}

/// Signature, flags and header-extension length that open a binary COPY stream.
pub(crate) const COPY_BINARY_HEADER: &[u8; 19] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The field count -1 that ends a binary COPY stream.
pub(crate) const COPY_BINARY_TRAILER: &[u8; 2] = &[0xff, 0xff];
/// Seconds from the Unix epoch to PostgreSQL's, 2000-01-01 00:00:00 UTC.
const PG_EPOCH_UNIX: i64 = 946_684_800;

/// Starts a tuple of `fields` fields.
fn put_tuple(buf: &mut Vec<u8>, fields: i16) {
    buf.extend_from_slice(&fields.to_be_bytes());
}

/// A NULL field.
fn put_null(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&(-1i32).to_be_bytes());
}

/// A `bigint` field.
fn put_i64(buf: &mut Vec<u8>, v: i64) {
    buf.extend_from_slice(&8i32.to_be_bytes());
    buf.extend_from_slice(&v.to_be_bytes());
}

/// An `integer` field.
fn put_i32(buf: &mut Vec<u8>, v: i32) {
    buf.extend_from_slice(&4i32.to_be_bytes());
    buf.extend_from_slice(&v.to_be_bytes());
}

/// A `text` field of the concatenated `parts`.
fn put_text(buf: &mut Vec<u8>, parts: &[&str]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    buf.extend_from_slice(&(len as i32).to_be_bytes());
    for p in parts {
        buf.extend_from_slice(p.as_bytes());
    }
}

/// A `text` field written by `f`: its length is patched in afterwards.
fn put_text_with(buf: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) {
    let at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    f(buf);
    let len = (buf.len() - at - 4) as i32;
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// A `timestamptz` field at Unix time `unix` (whole seconds): microseconds since 2000-01-01 UTC.
pub(crate) fn put_timestamp(buf: &mut Vec<u8>, unix: i64) {
    put_i64(buf, (unix - PG_EPOCH_UNIX) * 1_000_000);
}

/// A `numeric` field worth `cents / 100` with display scale 2 (`1234` is `12.34`): base-10000
/// digits, most significant first, without leading or trailing zero digits, as PostgreSQL stores
/// them.
pub(crate) fn put_money(buf: &mut Vec<u8>, cents: i64) {
    // i64::MAX cents has 17 integer digits: 5 base-10000 digits, and one for the cents.
    let mut digits = [0u16; 6];
    let mut n = 0;
    let abs = cents.unsigned_abs();
    let (mut int, frac) = (abs / 100, (abs % 100) as u16);
    let mut groups = [0u16; 5];
    let mut g = 0;
    while int > 0 {
        groups[g] = (int % 10_000) as u16;
        int /= 10_000;
        g += 1;
    }
    for i in (0..g).rev() {
        digits[n] = groups[i];
        n += 1;
    }
    let weight = g as i16 - 1;
    if frac != 0 {
        digits[n] = frac * 100;
        n += 1;
    } else {
        while n > 0 && digits[n - 1] == 0 {
            n -= 1;
        }
    }
    let (weight, sign) = match (n, cents < 0) {
        (0, _) => (0, 0x0000u16),
        (_, true) => (weight, 0x4000),
        (_, false) => (weight, 0x0000),
    };
    buf.extend_from_slice(&(8 + 2 * n as i32).to_be_bytes());
    buf.extend_from_slice(&(n as i16).to_be_bytes());
    buf.extend_from_slice(&weight.to_be_bytes());
    buf.extend_from_slice(&sign.to_be_bytes());
    buf.extend_from_slice(&2i16.to_be_bytes());
    for d in &digits[..n] {
        buf.extend_from_slice(&d.to_be_bytes());
    }
}

/// Binary COPY tuples for `res_partner(id, name, email, city, create_date)`.
pub(crate) fn write_partners(partners: &[Partner], buf: &mut Vec<u8>) {
    for p in partners {
        put_tuple(buf, 5);
        put_i64(buf, p.id);
        put_text(buf, &[p.first, " ", p.last]);
        if p.has_email {
            put_text_with(buf, |buf| {
                for part in [p.first, p.last] {
                    buf.extend(part.bytes().map(|b| b.to_ascii_lowercase()));
                    buf.push(b'.');
                }
                let _ = write!(buf, "{}@example.com", p.id);
            });
        } else {
            put_null(buf);
        }
        put_text(buf, &[p.city]);
        put_timestamp(buf, p.create_date);
    }
}

/// Binary COPY tuples for `pos_order(id, partner_id, create_date, amount_total, state)`.
pub(crate) fn write_orders(chunk: &OrderChunk, buf: &mut Vec<u8>) {
    for o in &chunk.orders {
        put_tuple(buf, 5);
        put_i64(buf, o.id);
        match o.partner_id {
            Some(p) => put_i64(buf, p),
            None => put_null(buf),
        }
        put_timestamp(buf, o.create_date);
        put_money(buf, o.amount_cents);
        put_text(buf, &[o.state]);
    }
}

/// Binary COPY tuples for `pos_order_line(id, order_id, product_id, qty, price_unit,
/// price_subtotal)`; the chunk's first line gets id `first_line_id`.
pub(crate) fn write_lines(chunk: &OrderChunk, first_line_id: i64, buf: &mut Vec<u8>) {
    let mut id = first_line_id;
    for o in &chunk.orders {
        for l in &chunk.lines[o.first_line..o.first_line + o.line_count] {
            put_tuple(buf, 6);
            put_i64(buf, id);
            put_i64(buf, o.id);
            put_i32(buf, l.product_id);
            put_money(buf, l.qty * 100);
            put_money(buf, l.price_cents);
            put_money(buf, l.subtotal_cents());
            id += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    const END: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
    const DAYS: i64 = 30;

    /// All three tables' binary COPY tuples for a plan, generated in parallel on the current rayon pool.
    fn all_text(plan: &Plan) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let partners: Vec<Vec<u8>> = (0..plan.partner_chunks())
            .into_par_iter()
            .map(|k| {
                let mut b = Vec::new();
                write_partners(&plan.partner_chunk(k), &mut b);
                b
            })
            .collect();
        let chunks: Vec<OrderChunk> = (0..plan.order_chunks())
            .into_par_iter()
            .map(|k| plan.order_chunk(k))
            .collect();
        let (mut orders, mut lines, mut next_line) = (Vec::new(), Vec::new(), 1);
        for c in &chunks {
            write_orders(c, &mut orders);
            write_lines(c, next_line, &mut lines);
            next_line += c.lines.len() as i64;
        }
        (partners.concat(), orders, lines)
    }

    fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(f)
    }

    #[test]
    fn same_seed_same_rows_whatever_the_thread_count() {
        let plan = Plan::new(3, 42, END, DAYS);
        let one = in_pool(1, || all_text(&plan));
        let four = in_pool(4, || all_text(&plan));
        assert_eq!(one, four);
        assert_eq!(one, all_text(&Plan::new(3, 42, END, DAYS)));
    }

    #[test]
    fn different_seeds_differ() {
        let a = all_text(&Plan::new(1, 1, END, DAYS));
        let b = all_text(&Plan::new(1, 2, END, DAYS));
        assert_ne!(a.0, b.0);
        assert_ne!(a.1, b.1);
        assert_ne!(a.2, b.2);
    }

    #[test]
    fn amount_total_is_the_exact_sum_of_line_subtotals() {
        let plan = Plan::new(2, 7, END, DAYS);
        for k in 0..plan.order_chunks() {
            let c = plan.order_chunk(k);
            for o in &c.orders {
                let lines = &c.lines[o.first_line..o.first_line + o.line_count];
                let sum: i64 = lines.iter().map(|l| l.qty * l.price_cents).sum();
                assert_eq!(o.amount_cents, sum, "order {}", o.id);
                assert!((1..=5).contains(&o.line_count));
                for l in lines {
                    assert!((1..=5).contains(&l.qty));
                    assert!((50..=20_000).contains(&l.price_cents));
                    assert!((1..=PRODUCTS as i32).contains(&l.product_id));
                }
            }
        }
    }

    #[test]
    fn counts_scale_and_lines_average_three() {
        for scale in [1u32, 2, 7] {
            let plan = Plan::new(scale, 3, END, DAYS);
            let partners: usize = (0..plan.partner_chunks())
                .map(|k| plan.partner_chunk(k).len())
                .sum();
            let chunks: Vec<_> = (0..plan.order_chunks())
                .map(|k| plan.order_chunk(k))
                .collect();
            let orders: usize = chunks.iter().map(|c| c.orders.len()).sum();
            let lines: usize = chunks.iter().map(|c| c.lines.len()).sum();
            assert_eq!(partners, 100 * scale as usize);
            assert_eq!(orders, 1_000 * scale as usize);
            let mean = lines as f64 / orders as f64;
            assert!((2.8..3.2).contains(&mean), "scale {scale}: mean {mean}");
            let ids: Vec<i64> = chunks
                .iter()
                .flat_map(|c| c.orders.iter().map(|o| o.id))
                .collect();
            assert_eq!(ids, (1..=orders as i64).collect::<Vec<_>>());
        }
    }

    #[test]
    fn orders_fill_the_window_in_id_order_and_favour_shop_hours() {
        let plan = Plan::new(5, 9, END, DAYS);
        let orders: Vec<Order> = (0..plan.order_chunks())
            .flat_map(|k| plan.order_chunk(k).orders)
            .collect();
        assert!(orders
            .windows(2)
            .all(|w| w[0].create_date <= w[1].create_date));
        assert!(orders.first().unwrap().create_date >= plan.start);
        assert!(orders.last().unwrap().create_date < END);
        let shop_hours = orders
            .iter()
            .filter(|o| (9..20).contains(&(o.create_date.rem_euclid(86_400) / 3_600)))
            .count();
        assert!(shop_hours * 10 > orders.len() * 8, "{shop_hours}");
        let anonymous = orders.iter().filter(|o| o.partner_id.is_none()).count();
        assert!(anonymous > 0 && anonymous * 5 < orders.len());
    }

    #[test]
    fn partner_choice_has_regulars() {
        let plan = Plan::new(10, 5, END, DAYS);
        let mut per_partner = vec![0u32; plan.partners as usize + 1];
        for k in 0..plan.order_chunks() {
            for o in plan.order_chunk(k).orders {
                if let Some(p) = o.partner_id {
                    per_partner[p as usize] += 1;
                }
            }
        }
        let mut counts = per_partner[1..].to_vec();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top_tenth: u32 = counts[..counts.len() / 10].iter().sum();
        let all: u32 = counts.iter().sum();
        assert!(
            top_tenth * 10 > all * 3,
            "top 10% have {top_tenth} of {all}"
        );
    }

    /// The fields of one binary COPY tuple at `buf[*at..]`, `None` for NULL; moves `at` past it.
    fn tuple<'a>(buf: &'a [u8], at: &mut usize) -> Vec<Option<&'a [u8]>> {
        let n = i16::from_be_bytes([buf[*at], buf[*at + 1]]);
        *at += 2;
        (0..n)
            .map(|_| {
                let len = i32::from_be_bytes(buf[*at..*at + 4].try_into().unwrap());
                *at += 4;
                (len >= 0).then(|| {
                    let f = &buf[*at..*at + len as usize];
                    *at += len as usize;
                    f
                })
            })
            .collect()
    }

    /// `(ndigits, weight, sign, dscale, digits)` of a binary numeric field.
    fn numeric(cents: i64) -> (i16, i16, u16, i16, Vec<u16>) {
        let mut b = Vec::new();
        put_money(&mut b, cents);
        let mut at = 0;
        b.splice(0..0, 1i16.to_be_bytes());
        let f = tuple(&b, &mut at)[0].unwrap().to_vec();
        let w = |i: usize| [f[2 * i], f[2 * i + 1]];
        let n = i16::from_be_bytes(w(0));
        let digits = (0..n as usize)
            .map(|i| u16::from_be_bytes(w(4 + i)))
            .collect();
        assert_eq!(f.len(), 8 + 2 * n as usize);
        (
            n,
            i16::from_be_bytes(w(1)),
            u16::from_be_bytes(w(2)),
            i16::from_be_bytes(w(3)),
            digits,
        )
    }

    #[test]
    fn numeric_is_encoded_as_postgresql_stores_it() {
        // 123.45: digit 0123 at weight 0, then .4500.
        assert_eq!(numeric(12_345), (2, 0, 0, 2, vec![123, 4_500]));
        // 0.05: one digit .0500 at weight -1.
        assert_eq!(numeric(5), (1, -1, 0, 2, vec![500]));
        // 3.00: no trailing zero digit.
        assert_eq!(numeric(300), (1, 0, 0, 2, vec![3]));
        // 10000.00 is 1 at weight 1, the zero digit after it dropped.
        assert_eq!(numeric(1_000_000), (1, 1, 0, 2, vec![1]));
        // 12345678.90: 1234 5678 . 9000.
        assert_eq!(
            numeric(1_234_567_890),
            (3, 1, 0, 2, vec![1_234, 5_678, 9_000])
        );
        assert_eq!(numeric(0), (0, 0, 0, 2, vec![]));
        assert_eq!(numeric(-250), (2, 0, 0x4000, 2, vec![2, 5_000]));
        assert_eq!(numeric(i64::MAX).0, 6);
    }

    #[test]
    fn binary_tuples_carry_every_generated_value() {
        assert_eq!(COPY_BINARY_HEADER.len(), 19);
        let mut b = Vec::new();
        put_timestamp(&mut b, END);
        // 2026-01-01 is 9,497 days after 2000-01-01.
        assert_eq!(b[4..], (9_497i64 * 86_400 * 1_000_000).to_be_bytes());

        let plan = Plan::new(1, 1, END, DAYS);
        let partners = plan.partner_chunk(0);
        let mut b = Vec::new();
        write_partners(&partners, &mut b);
        let mut at = 0;
        for p in &partners {
            let f = tuple(&b, &mut at);
            assert_eq!(f.len(), 5);
            assert_eq!(f[0].unwrap(), p.id.to_be_bytes());
            assert_eq!(f[1].unwrap(), format!("{} {}", p.first, p.last).as_bytes());
            let email = format!("{}.{}.{}@example.com", p.first, p.last, p.id).to_lowercase();
            assert_eq!(f[2], p.has_email.then_some(email.as_bytes()));
            assert_eq!(f[3].unwrap(), p.city.as_bytes());
            let micros = (p.create_date - PG_EPOCH_UNIX) * 1_000_000;
            assert_eq!(f[4].unwrap(), micros.to_be_bytes());
        }
        assert_eq!(at, b.len());

        let chunk = plan.order_chunk(0);
        let (mut orders, mut lines) = (Vec::new(), Vec::new());
        write_orders(&chunk, &mut orders);
        write_lines(&chunk, 7, &mut lines);
        let money = |cents: i64| {
            let mut m = Vec::new();
            put_money(&mut m, cents);
            m[4..].to_vec()
        };
        let (mut at, mut line_at, mut id) = (0, 0, 7i64);
        for o in &chunk.orders {
            let f = tuple(&orders, &mut at);
            assert_eq!(f[0].unwrap(), o.id.to_be_bytes());
            assert_eq!(
                f[1].map(<[u8]>::to_vec),
                o.partner_id.map(|p| p.to_be_bytes().to_vec())
            );
            assert_eq!(f[3].unwrap(), money(o.amount_cents));
            assert_eq!(f[4].unwrap(), o.state.as_bytes());
            for l in &chunk.lines[o.first_line..o.first_line + o.line_count] {
                let f = tuple(&lines, &mut line_at);
                assert_eq!(f.len(), 6);
                assert_eq!(f[0].unwrap(), id.to_be_bytes());
                assert_eq!(f[1].unwrap(), o.id.to_be_bytes());
                assert_eq!(f[2].unwrap(), l.product_id.to_be_bytes());
                assert_eq!(f[3].unwrap(), money(l.qty * 100));
                assert_eq!(f[4].unwrap(), money(l.price_cents));
                assert_eq!(f[5].unwrap(), money(l.subtotal_cents()));
                id += 1;
            }
        }
        assert_eq!((at, line_at), (orders.len(), lines.len()));
    }
}
