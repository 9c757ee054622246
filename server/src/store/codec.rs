//! The chunk codec: integer streams (timestamps, counts) and float streams (sample values),
//! bit-packed, after Facebook's Gorilla paper with two changes measured on host data.
//!
//! # Format
//!
//! Every stream is self-describing and byte-aligned at its end (at most 7 padding bits):
//!
//! ```text
//! int stream:    version:u8=1  count:uvar  [first:zvar]  body
//!   body:        order:2 bits (1 = delta, 2 = delta-of-delta)
//!                [first_delta:zvar]              only for order 2 with count >= 2
//!                gcd:uvar                        0 = every residual is zero: nothing follows
//!                k:6 bits                        Rice parameter
//!                residual x (count - order)      Rice(k) of zigzag(residual / gcd)
//! float stream:  version:u8=1  count:uvar  mode:u8
//!   mode 0 (xor):      first:64 bits, then Gorilla XOR records
//!   mode 1 (decimal):  scale:u8 (e <= 18), then an int stream body of n_i where
//!                      value_i = n_i / 10^e exactly (bit for bit)
//! ```
//!
//! `uvar` is a LEB128-style unsigned varint written at bit level (8-bit groups, high bit =
//! more), `zvar` the same of the zigzagged value. A Rice code writes `q = z >> k` in unary
//! (`q` ones, then a zero) and the low `k` bits of `z`; `q >= 16` is escaped as sixteen ones
//! and the 64 bits of `z`, so one outlier costs 80 bits instead of a huge unary run.
//! A Gorilla XOR record is `0` (same value), `10` + meaningful bits in the previous window,
//! or `11` + leading zeros (6 bits) + length - 1 (6 bits) + the meaningful bits.
//!
//! # Why not plain Gorilla
//!
//! Host metrics are mostly decimal in disguise: CPU seconds are ticks / 100, memory is
//! kB × 1024, load averages have two decimals. XOR of such floats leaves ~40 meaningful
//! bits; the same values as integers differ by small, regular steps. So the float encoder
//! tries the *decimal* form (smallest `e` such that every value is exactly `n / 10^e`),
//! divides residuals by their common divisor (the 1024 of memory sizes) and Rice-codes them
//! with the best `k` for the chunk; it keeps whichever of XOR and decimal is smaller.
//! Timestamps use the same integer encoder, delta or delta-of-delta, whichever is smaller.
//!
//! # Invariants
//!
//! - Lossless, bit for bit: NaN payloads, -0.0 and ±Inf round-trip (they force XOR mode).
//! - Any order and duplicates: the codec stores a sequence as given (deltas may be negative
//!   or zero). Sorting and last-write-wins on equal timestamps are the store's job, before
//!   encoding; the store only writes strictly increasing timestamps.
//! - Decoding never panics and never allocates more than the input can describe: every
//!   read is bounds-checked, arithmetic wraps, and counts are checked against the bits left.

/// Version byte at the start of every stream.
const VERSION: u8 = 1;
/// Unary quotients from here on are escaped to 64 raw bits.
const RICE_ESCAPE: u64 = 16;
/// Largest decimal scale tried and accepted: 10^18 still fits an i64.
const MAX_SCALE: u32 = 18;
/// Exact powers of ten (every one up to 10^22 is exact in an f64).
const POW10: [f64; 19] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18,
];
/// Most values one stream may hold.
const MAX_COUNT: usize = 1 << 20;
/// Integers up to here are exact in an f64.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The stream ends before its content does.
    #[error("chunk is truncated")]
    Truncated,
    /// The version byte is not one this build reads.
    #[error("chunk version {0} is not supported")]
    Version(u8),
    /// A header field holds an impossible value.
    #[error("chunk header is invalid: {0}")]
    Invalid(&'static str),
}

// ---------------------------------------------------------------------------------------
// Bits

/// Appends bits most significant first.
#[derive(Debug, Default)]
pub(crate) struct BitWriter {
    buf: Vec<u8>,
    acc: u64,
    /// Pending bits in `acc`, always < 8 between calls.
    nbits: u32,
}

impl BitWriter {
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        Self {
            buf: Vec::with_capacity(bytes),
            acc: 0,
            nbits: 0,
        }
    }

    /// Writes the low `n` bits of `value`, `n <= 64`.
    pub(crate) fn write_bits(&mut self, value: u64, n: u32) {
        if n > 32 {
            self.write_small(value >> 32, n - 32);
            self.write_small(value & 0xffff_ffff, 32);
        } else {
            self.write_small(value, n);
        }
    }

    fn write_small(&mut self, value: u64, n: u32) {
        if n == 0 {
            return;
        }
        let masked = value & (u64::MAX >> (64 - n));
        // nbits < 8 and n <= 32, so the shift never loses bits.
        self.acc = (self.acc << n) | masked;
        self.nbits += n;
        while self.nbits >= 8 {
            self.nbits -= 8;
            self.buf.push((self.acc >> self.nbits) as u8);
        }
        self.acc &= (1u64 << self.nbits) - 1;
    }

    pub(crate) fn write_bit(&mut self, bit: bool) {
        self.write_small(u64::from(bit), 1);
    }

    pub(crate) fn write_uvar(&mut self, mut v: u64) {
        loop {
            let low = v & 0x7f;
            v >>= 7;
            if v == 0 {
                self.write_small(low, 8);
                return;
            }
            self.write_small(low | 0x80, 8);
        }
    }

    pub(crate) fn write_zvar(&mut self, v: i64) {
        self.write_uvar(zigzag(v));
    }

    /// Pads with zeros to a byte boundary and returns the bytes.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        if self.nbits > 0 {
            let pad = 8 - self.nbits;
            self.write_small(0, pad);
        }
        self.buf
    }
}

/// Reads bits most significant first; every read is bounds-checked.
#[derive(Debug)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    /// Reads `n <= 64` bits.
    pub(crate) fn read_bits(&mut self, n: u32) -> Result<u64, CodecError> {
        if n == 0 {
            return Ok(0);
        }
        if n as usize > self.remaining() {
            return Err(CodecError::Truncated);
        }
        let byte = self.pos / 8;
        let off = (self.pos % 8) as u32;
        // Fast path: one unaligned 64-bit load covers the bits.
        if n <= 56 && byte + 8 <= self.data.len() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&self.data[byte..byte + 8]);
            let w = u64::from_be_bytes(word);
            self.pos += n as usize;
            return Ok((w << off) >> (64 - n));
        }
        let mut out = 0u64;
        let mut left = n;
        while left > 0 {
            let b = u64::from(self.data[self.pos / 8]);
            let off = (self.pos % 8) as u32;
            let avail = 8 - off;
            let take = avail.min(left);
            let bits = (b >> (avail - take)) & ((1u64 << take) - 1);
            out = (out << take) | bits;
            self.pos += take as usize;
            left -= take;
        }
        Ok(out)
    }

    pub(crate) fn read_bit(&mut self) -> Result<bool, CodecError> {
        Ok(self.read_bits(1)? == 1)
    }

    /// Reads a unary count: 1 bits up to and including a 0 bit, or `max` 1 bits (then no
    /// 0 follows). Counts a word's leading ones at a time rather than bit by bit, since
    /// Rice-coded residuals spend most of their bits here.
    pub(crate) fn read_unary(&mut self, max: u64) -> Result<u64, CodecError> {
        let mut q = 0u64;
        while q < max {
            let byte = self.pos / 8;
            if byte + 8 > self.data.len() {
                // Near the end: bit by bit.
                if !self.read_bit()? {
                    return Ok(q);
                }
                q += 1;
                continue;
            }
            let mut word = [0u8; 8];
            word.copy_from_slice(&self.data[byte..byte + 8]);
            // At least 57 valid bits once shifted; count within 56 of them.
            let w = u64::from_be_bytes(word) << (self.pos % 8);
            let ones = u64::from(w.leading_ones().min(56)).min(max - q);
            q += ones;
            self.pos += ones as usize;
            if ones < 56 && q < max {
                // The 0 that ends the count.
                self.pos += 1;
                return Ok(q);
            }
        }
        Ok(q)
    }

    pub(crate) fn read_uvar(&mut self) -> Result<u64, CodecError> {
        let mut out = 0u64;
        for i in 0..10u32 {
            let group = self.read_bits(8)?;
            let shift = 7 * i;
            let low = group & 0x7f;
            if shift == 63 && low > 1 {
                return Err(CodecError::Invalid("varint overflows 64 bits"));
            }
            out |= low << shift;
            if group & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(CodecError::Invalid("varint longer than 10 groups"))
    }

    pub(crate) fn read_zvar(&mut self) -> Result<i64, CodecError> {
        Ok(unzigzag(self.read_uvar()?))
    }

    /// Moves to the next byte boundary.
    fn align(&mut self) {
        self.pos = self.pos.div_ceil(8) * 8;
    }

    fn byte_pos(&self) -> usize {
        self.pos.div_ceil(8)
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

/// How many values a stream may claim. A constant run costs no bits per value, so the
/// data cannot bound the count; this cap bounds what a corrupt header can make us allocate
/// (16 MiB), far above any chunk the store writes.
fn check_count(count: u64) -> Result<usize, CodecError> {
    match usize::try_from(count) {
        Ok(n) if n <= MAX_COUNT => Ok(n),
        _ => Err(CodecError::Invalid("count exceeds the limit")),
    }
}

// ---------------------------------------------------------------------------------------
// Integer streams

/// The residuals of one order: everything the body needs besides `first`.
struct Residuals {
    order: u8,
    first_delta: i64,
    gcd: u64,
    k: u32,
    /// Zigzagged residuals already divided by `gcd`.
    z: Vec<u64>,
    cost_bits: u64,
}

fn rice_cost(z: &[u64], k: u32) -> u64 {
    z.iter()
        .map(|&z| {
            let q = z >> k;
            if q >= RICE_ESCAPE {
                RICE_ESCAPE + 64
            } else {
                q + 1 + u64::from(k)
            }
        })
        .sum()
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn residuals(values: &[i64], order: u8) -> Residuals {
    // raw[i] for order 1: x[i+1] - x[i]; for order 2: (x[i+2] - x[i+1]) - (x[i+1] - x[i]).
    let deltas = values.windows(2).map(|w| w[1].wrapping_sub(w[0]));
    let (first_delta, raw): (i64, Vec<i64>) = if order == 1 {
        (0, deltas.collect())
    } else {
        let d: Vec<i64> = deltas.collect();
        let first = d.first().copied().unwrap_or(0);
        (
            first,
            d.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect(),
        )
    };
    let mut g = raw.iter().fold(0u64, |g, r| gcd(g, r.unsigned_abs()));
    if g > i64::MAX as u64 {
        // Only i64::MIN alone gets here; dividing by it is not worth the special case.
        g = 1;
    }
    let z: Vec<u64> = if g == 0 {
        Vec::new()
    } else {
        raw.iter().map(|r| zigzag(r / g as i64)).collect()
    };
    let (k, body) = if z.is_empty() {
        (0, 0)
    } else {
        // The best Rice parameter is near log2 of the mean; try its neighbours.
        let mean = z.iter().map(|&v| u128::from(v)).sum::<u128>() / z.len() as u128;
        let guess = 128 - mean.leading_zeros();
        let lo = guess.saturating_sub(2);
        let hi = (guess + 2).min(63);
        (lo..=hi)
            .map(|k| (k, rice_cost(&z, k)))
            .min_by_key(|&(_, c)| c)
            .unwrap_or((0, 0))
    };
    let header = 2 + 8 + if g == 0 { 0 } else { 6 } + if order == 2 { 16 } else { 0 };
    Residuals {
        order,
        first_delta,
        gcd: g,
        k,
        z,
        cost_bits: header + body,
    }
}

/// Writes `count`, `first` and the cheaper body of an integer sequence (no version byte).
fn write_ints(w: &mut BitWriter, values: &[i64]) {
    w.write_uvar(values.len() as u64);
    let Some(&first) = values.first() else {
        return;
    };
    w.write_zvar(first);
    if values.len() == 1 {
        return;
    }
    let r1 = residuals(values, 1);
    let best = if values.len() >= 3 {
        let r2 = residuals(values, 2);
        if r2.cost_bits < r1.cost_bits { r2 } else { r1 }
    } else {
        r1
    };
    w.write_bits(u64::from(best.order), 2);
    if best.order == 2 {
        w.write_zvar(best.first_delta);
    }
    w.write_uvar(best.gcd);
    if best.gcd == 0 {
        return;
    }
    w.write_bits(u64::from(best.k), 6);
    for &z in &best.z {
        let q = z >> best.k;
        if q >= RICE_ESCAPE {
            w.write_bits((1u64 << RICE_ESCAPE) - 1, RICE_ESCAPE as u32);
            w.write_bits(z, 64);
        } else {
            // q ones then a zero; q < 16 so this is at most 16 bits.
            w.write_bits(((1u64 << q) - 1) << 1, q as u32 + 1);
            w.write_bits(z, best.k);
        }
    }
}

fn read_ints(r: &mut BitReader<'_>) -> Result<Vec<i64>, CodecError> {
    let count = check_count(r.read_uvar()?)?;
    // Grows past this only while the data keeps describing values.
    let mut out = Vec::with_capacity(count.min(r.remaining() + 1));
    if count == 0 {
        return Ok(out);
    }
    let first = r.read_zvar()?;
    out.push(first);
    if count == 1 {
        return Ok(out);
    }
    let order = r.read_bits(2)?;
    if order != 1 && order != 2 {
        return Err(CodecError::Invalid("integer order"));
    }
    let mut delta = if order == 2 { r.read_zvar()? } else { 0 };
    let g = r.read_uvar()?;
    let k = if g == 0 { 0 } else { r.read_bits(6)? as u32 };
    let mut prev = first;
    if order == 2 {
        prev = prev.wrapping_add(delta);
        out.push(prev);
    }
    while out.len() < count {
        let residual = if g == 0 {
            0
        } else {
            let q = r.read_unary(RICE_ESCAPE)?;
            let z = if q == RICE_ESCAPE {
                r.read_bits(64)?
            } else {
                (q << k) | r.read_bits(k)?
            };
            unzigzag(z).wrapping_mul(g as i64)
        };
        if order == 1 {
            prev = prev.wrapping_add(residual);
        } else {
            delta = delta.wrapping_add(residual);
            prev = prev.wrapping_add(delta);
        }
        out.push(prev);
    }
    Ok(out)
}

/// Encodes integers (timestamps, counts, offsets), in any order.
pub fn encode_ints(values: &[i64]) -> Vec<u8> {
    let mut w = BitWriter::with_capacity(16 + values.len() / 2);
    w.write_bits(u64::from(VERSION), 8);
    write_ints(&mut w, values);
    w.finish()
}

/// Decodes what [`encode_ints`] wrote.
pub fn decode_ints(data: &[u8]) -> Result<Vec<i64>, CodecError> {
    let mut r = BitReader::new(data);
    read_version(&mut r)?;
    read_ints(&mut r)
}

fn read_version(r: &mut BitReader<'_>) -> Result<(), CodecError> {
    let v = r.read_bits(8)? as u8;
    if v == VERSION {
        Ok(())
    } else {
        Err(CodecError::Version(v))
    }
}

// ---------------------------------------------------------------------------------------
// Float streams

const MODE_XOR: u64 = 0;
const MODE_DECIMAL: u64 = 1;
const MODE_NEAR: u64 = 2;

/// The integers `n_i` and scale `e` with `v_i == n_i / 10^e` bit for bit, if there are any.
fn as_decimal(values: &[f64]) -> Option<(u32, Vec<i64>)> {
    let mut e = 0u32;
    let mut ints = Vec::with_capacity(values.len());
    'values: for &v in values {
        // A value exact at scale e is exact at every larger scale (same real quotient),
        // so the scale only ever grows; earlier integers are rescaled below.
        while e <= MAX_SCALE {
            if let Some(n) = exact_int(v, e) {
                ints.push(n);
                continue 'values;
            }
            e += 1;
        }
        return None;
    }
    // Redo at the final scale: the rescaled integers must also be exact.
    if e > 0 {
        for (n, &v) in ints.iter_mut().zip(values) {
            *n = exact_int(v, e)?;
        }
    }
    Some((e, ints))
}

/// `n` with `n / 10^e == v` bit for bit, computed exactly as the decoder will.
fn exact_int(v: f64, e: u32) -> Option<i64> {
    let scale = POW10[e as usize];
    let n = (v * scale).round();
    if n.is_nan() || n.abs() > MAX_EXACT {
        return None;
    }
    let n = n as i64;
    // Through the integer, so that -0.0 (which would come back as +0.0) is refused.
    ((n as f64 / scale).to_bits() == v.to_bits()).then_some(n)
}

fn write_xor(w: &mut BitWriter, values: &[f64]) {
    let Some(first) = values.first() else {
        return;
    };
    let mut prev = first.to_bits();
    w.write_bits(prev, 64);
    // Start with an impossible window so that the first non-zero XOR writes its own.
    let (mut lead, mut trail) = (u32::MAX, 0u32);
    for v in &values[1..] {
        let bits = v.to_bits();
        let x = bits ^ prev;
        prev = bits;
        if x == 0 {
            w.write_bit(false);
            continue;
        }
        let l = x.leading_zeros().min(63);
        let t = x.trailing_zeros();
        if lead != u32::MAX && l >= lead && t >= trail {
            w.write_bits(0b10, 2);
            w.write_bits(x >> trail, 64 - lead - trail);
        } else {
            lead = l;
            trail = t;
            let len = 64 - l - t;
            w.write_bits(0b11, 2);
            w.write_bits(u64::from(l), 6);
            w.write_bits(u64::from(len - 1), 6);
            w.write_bits(x >> t, len);
        }
    }
}

fn read_xor(r: &mut BitReader<'_>, count: usize) -> Result<Vec<f64>, CodecError> {
    // Every value after the first costs at least one bit here.
    if count > r.remaining() + 1 {
        return Err(CodecError::Invalid("count exceeds the data"));
    }
    let mut out = Vec::with_capacity(count);
    if count == 0 {
        return Ok(out);
    }
    let mut prev = r.read_bits(64)?;
    out.push(f64::from_bits(prev));
    let (mut lead, mut len) = (None::<u32>, 0u32);
    while out.len() < count {
        if r.read_bit()? {
            if r.read_bit()? {
                let l = r.read_bits(6)? as u32;
                let n = r.read_bits(6)? as u32 + 1;
                if l + n > 64 {
                    return Err(CodecError::Invalid("xor window"));
                }
                lead = Some(l);
                len = n;
            }
            let Some(l) = lead else {
                return Err(CodecError::Invalid("xor window reused before set"));
            };
            let trail = 64 - l - len;
            prev ^= r.read_bits(len)? << trail;
        }
        out.push(f64::from_bits(prev));
    }
    Ok(out)
}

/// Encodes floats, choosing the smaller of the decimal and XOR forms.
pub fn encode_values(values: &[f64]) -> Vec<u8> {
    let xor = encode_values_xor(values);
    let Some((e, ints)) = as_decimal(values) else {
        return xor;
    };
    let mut w = BitWriter::with_capacity(16 + values.len() / 2);
    w.write_bits(u64::from(VERSION), 8);
    w.write_uvar(values.len() as u64);
    w.write_bits(MODE_DECIMAL, 8);
    w.write_bits(u64::from(e), 8);
    write_ints(&mut w, &ints);
    let dec = w.finish();
    if dec.len() < xor.len() { dec } else { xor }
}

/// The integer a guess stands for at scale `e`: the same arithmetic in encoder and decoder,
/// so it need not be exact, only repeatable; a guess out of range stands for 0.
fn guess_int(guess: f64, e: u32) -> i64 {
    let n = (guess * POW10[e as usize]).round();
    if n.is_finite() && n.abs() <= MAX_EXACT {
        n as i64
    } else {
        0
    }
}

/// Encodes floats that lie near values the decoder can compute from other columns (a
/// rollup's minimum near the smaller of its first and last value, say): as [`encode_values`],
/// or, when that is smaller, in *near* mode, the decimal integers' differences from the
/// guesses at the same scale. `guesses` must be as long as `values`.
pub fn encode_values_near(values: &[f64], guesses: &[f64]) -> Vec<u8> {
    let plain = encode_values(values);
    if guesses.len() != values.len() {
        return plain;
    }
    let Some((e, ints)) = as_decimal(values) else {
        return plain;
    };
    let residuals: Vec<i64> = ints
        .iter()
        .zip(guesses)
        .map(|(&n, &g)| n.wrapping_sub(guess_int(g, e)))
        .collect();
    let mut w = BitWriter::with_capacity(16 + values.len() / 2);
    w.write_bits(u64::from(VERSION), 8);
    w.write_uvar(values.len() as u64);
    w.write_bits(MODE_NEAR, 8);
    w.write_bits(u64::from(e), 8);
    write_ints(&mut w, &residuals);
    let near = w.finish();
    if near.len() < plain.len() {
        near
    } else {
        plain
    }
}

/// Decodes what [`encode_values_near`] wrote, given the same guesses; a guess may be
/// computed from values decoded just before (each guess is used only after the values
/// before it are known).
pub fn decode_values_near(
    data: &[u8],
    mut guess: impl FnMut(usize, &[f64]) -> f64,
) -> Result<Vec<f64>, CodecError> {
    let mut r = BitReader::new(data);
    read_version(&mut r)?;
    let count = check_count(r.read_uvar()?)?;
    if r.read_bits(8)? != MODE_NEAR {
        return decode_values(data);
    }
    let e = r.read_bits(8)? as u32;
    if e > MAX_SCALE {
        return Err(CodecError::Invalid("decimal scale"));
    }
    let residuals = read_ints(&mut r)?;
    if residuals.len() != count {
        return Err(CodecError::Invalid("decimal count"));
    }
    let scale = POW10[e as usize];
    let mut out = Vec::with_capacity(count);
    for (i, d) in residuals.into_iter().enumerate() {
        let g = guess(i, &out);
        out.push(d.wrapping_add(guess_int(g, e)) as f64 / scale);
    }
    Ok(out)
}

/// Encodes floats in Gorilla's XOR form only: the baseline the benchmarks compare with.
pub fn encode_values_xor(values: &[f64]) -> Vec<u8> {
    let mut w = BitWriter::with_capacity(16 + values.len() * 2);
    w.write_bits(u64::from(VERSION), 8);
    w.write_uvar(values.len() as u64);
    w.write_bits(MODE_XOR, 8);
    write_xor(&mut w, values);
    w.finish()
}

/// Decodes what [`encode_values`] or [`encode_values_xor`] wrote.
pub fn decode_values(data: &[u8]) -> Result<Vec<f64>, CodecError> {
    let mut r = BitReader::new(data);
    read_values(&mut r)
}

fn read_values(r: &mut BitReader<'_>) -> Result<Vec<f64>, CodecError> {
    read_version(r)?;
    let count = check_count(r.read_uvar()?)?;
    match r.read_bits(8)? {
        MODE_XOR => read_xor(r, count),
        MODE_DECIMAL => {
            let e = r.read_bits(8)? as u32;
            if e > MAX_SCALE {
                return Err(CodecError::Invalid("decimal scale"));
            }
            let ints = read_ints(r)?;
            if ints.len() != count {
                return Err(CodecError::Invalid("decimal count"));
            }
            let scale = POW10[e as usize];
            Ok(ints.into_iter().map(|n| n as f64 / scale).collect())
        }
        _ => Err(CodecError::Invalid("float mode")),
    }
}

// ---------------------------------------------------------------------------------------
// Whole chunks

/// Encodes `(timestamp, value)` points as one self-contained chunk: `uvar(len of the
/// timestamp stream)`, the timestamp stream, the value stream.
pub fn encode_chunk(points: &[(i64, f64)]) -> Vec<u8> {
    let ts: Vec<i64> = points.iter().map(|p| p.0).collect();
    let vs: Vec<f64> = points.iter().map(|p| p.1).collect();
    let t = encode_ints(&ts);
    let v = encode_values(&vs);
    let mut w = BitWriter::with_capacity(t.len() + v.len() + 4);
    w.write_uvar(t.len() as u64);
    let mut out = w.finish();
    out.extend_from_slice(&t);
    out.extend_from_slice(&v);
    out
}

/// Decodes what [`encode_chunk`] wrote.
pub fn decode_chunk(data: &[u8]) -> Result<Vec<(i64, f64)>, CodecError> {
    let mut r = BitReader::new(data);
    let tlen = usize::try_from(r.read_uvar()?).map_err(|_| CodecError::Truncated)?;
    r.align();
    let start = r.byte_pos();
    let end = start.checked_add(tlen).ok_or(CodecError::Truncated)?;
    let (Some(t), Some(v)) = (data.get(start..end), data.get(end..)) else {
        return Err(CodecError::Truncated);
    };
    let ts = decode_ints(t)?;
    let vs = decode_values(v)?;
    if ts.len() != vs.len() {
        return Err(CodecError::Invalid("timestamp and value counts differ"));
    }
    Ok(ts.into_iter().zip(vs).collect())
}

/// Concatenates byte sections, each prefixed with its length (bit-level uvar, byte-aligned).
pub(crate) fn join_sections(sections: &[&[u8]]) -> Vec<u8> {
    let mut w = BitWriter::with_capacity(8);
    for s in sections {
        w.write_uvar(s.len() as u64);
    }
    let mut out = w.finish();
    for s in sections {
        out.extend_from_slice(s);
    }
    out
}

/// Splits what [`join_sections`] wrote into exactly `n` sections.
pub(crate) fn split_sections(data: &[u8], n: usize) -> Result<Vec<&[u8]>, CodecError> {
    let mut r = BitReader::new(data);
    let mut lens = Vec::with_capacity(n);
    for _ in 0..n {
        lens.push(usize::try_from(r.read_uvar()?).map_err(|_| CodecError::Truncated)?);
    }
    let mut pos = r.byte_pos();
    let mut out = Vec::with_capacity(n);
    for len in lens {
        let end = pos.checked_add(len).ok_or(CodecError::Truncated)?;
        out.push(data.get(pos..end).ok_or(CodecError::Truncated)?);
        pos = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn same(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    fn round_trip(points: &[(i64, f64)]) {
        let got = decode_chunk(&encode_chunk(points)).expect("decode");
        let (ts, vs): (Vec<i64>, Vec<f64>) = points.iter().copied().unzip();
        let (gts, gvs): (Vec<i64>, Vec<f64>) = got.into_iter().unzip();
        assert_eq!(ts, gts);
        assert!(same(&vs, &gvs), "{vs:?} != {gvs:?}");
        let xor = decode_values(&encode_values_xor(&vs)).expect("xor");
        assert!(same(&vs, &xor));
    }

    #[test]
    fn near_mode_is_small_when_guesses_are_good() {
        // A counter's minimum equals its first value: residuals are all zero.
        let mut n = 100_000i64;
        let first: Vec<f64> = (0..288i64)
            .map(|i| {
                n += (i * i * 7_919) % 1_000;
                n as f64 / 100.0
            })
            .collect();
        let near = encode_values_near(&first, &first);
        assert!(near.len() < 12, "{} bytes", near.len());
        assert!(near.len() * 10 < encode_values(&first).len());
        let back = decode_values_near(&near, |i, _| first[i]).unwrap();
        assert!(same(&first, &back));
    }

    #[test]
    fn specials_round_trip() {
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        round_trip(&[]);
        round_trip(&[(5, 1.0)]);
        round_trip(&[
            (0, f64::NAN),
            (1, f64::INFINITY),
            (1, f64::NEG_INFINITY),
            (-5, -0.0),
            (i64::MAX, 0.0),
            (i64::MIN, stale),
            (3, f64::MIN_POSITIVE),
            (3, f64::MAX),
        ]);
    }

    #[test]
    fn decimal_data_is_small() {
        // A CPU counter in ticks / 100 growing ~30 s per 30 s step.
        let points: Vec<(i64, f64)> = (0..240)
            .map(|i| {
                let ticks = 1_234_500 + i * 2_987 + (i * 7919) % 61;
                (1_700_000_000_000 + i * 30_000, ticks as f64 / 100.0)
            })
            .collect();
        let vs: Vec<f64> = points.iter().map(|p| p.1).collect();
        let bytes = encode_values(&vs).len();
        assert!(bytes < 240, "{bytes} bytes for 240 values");
        assert!(encode_values_xor(&vs).len() > 3 * bytes);
        round_trip(&points);
        // A constant series costs a few bytes whatever its length.
        assert!(encode_values(&[4096.0; 500]).len() < 12);
        let ts: Vec<i64> = (0..500).map(|i| i * 30_000).collect();
        assert!(encode_ints(&ts).len() < 12);
    }

    #[test]
    fn corrupt_headers_are_errors() {
        assert_eq!(decode_values(&[]), Err(CodecError::Truncated));
        assert_eq!(decode_ints(&[9, 0]), Err(CodecError::Version(9)));
        // A count far beyond the data is refused before allocating.
        let mut w = BitWriter::default();
        w.write_bits(1, 8);
        w.write_uvar(u64::MAX);
        assert!(decode_ints(&w.finish()).is_err());
    }

    fn realistic() -> impl Strategy<Value = Vec<(i64, f64)>> {
        // Jittered timestamps with some duplicates and reorders; counters with resets.
        prop::collection::vec((0i64..2_000, -1i64..3, 0u32..4_000, any::<bool>()), 0..300).prop_map(
            |steps| {
                let (mut ts, mut ticks) = (1_700_000_000_000i64, 100_000i64);
                steps
                    .into_iter()
                    .map(|(jitter, back, inc, reset)| {
                        ts += 30_000 + jitter - back * 30_000;
                        ticks = if reset {
                            i64::from(inc)
                        } else {
                            ticks + i64::from(inc)
                        };
                        (ts, ticks as f64 / 100.0)
                    })
                    .collect()
            },
        )
    }

    fn any_f64() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<u64>().prop_map(f64::from_bits),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            (-1_000_000i64..1_000_000).prop_map(|n| n as f64 / 1000.0),
            (0u64..1 << 40).prop_map(|n| (n * 1024) as f64),
        ]
    }

    proptest! {
        #[test]
        fn unary_counts_read_by_words_match_bit_by_bit(bytes in prop::collection::vec(any::<u8>(), 0..40), max in 0u64..80, skip in 0u32..8) {
            let mut fast = BitReader::new(&bytes);
            let mut slow = BitReader::new(&bytes);
            let _ = fast.read_bits(skip);
            let _ = slow.read_bits(skip);
            loop {
                let a = fast.read_unary(max);
                let mut q = 0;
                let b = loop {
                    if q >= max {
                        break Ok(q);
                    }
                    match slow.read_bit() {
                        Ok(true) => q += 1,
                        Ok(false) => break Ok(q),
                        Err(e) => break Err(e),
                    }
                };
                prop_assert_eq!(&a, &b);
                prop_assert_eq!(fast.pos, slow.pos);
                if a.is_err() || max == 0 {
                    break;
                }
            }
        }
    }

    proptest! {
        /// Near mode round-trips bit for bit whatever the guesses (close, far, NaN,
        /// infinite), and is never larger than the plain encoding.
        #[test]
        fn near_values_round_trip(
            ints in prop::collection::vec(-1_000_000i64..1_000_000, 0..200),
            scale in 0u32..4,
            noise in prop::collection::vec(-50i64..50, 200),
            wild in any::<f64>(),
        ) {
            let values: Vec<f64> = ints.iter().map(|&n| n as f64 / POW10[scale as usize]).collect();
            let guesses: Vec<f64> = values
                .iter()
                .zip(&noise)
                .enumerate()
                .map(|(i, (&v, &d))| if i % 17 == 3 { wild } else { v + d as f64 / 100.0 })
                .collect();
            let data = encode_values_near(&values, &guesses);
            prop_assert!(data.len() <= encode_values(&values).len());
            let back = decode_values_near(&data, |i, _| guesses[i]).expect("decode");
            prop_assert!(same(&values, &back), "{:?} != {:?}", values, back);
        }

        #[test]
        fn near_decoding_never_panics(data in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_values_near(&data, |i, _| i as f64);
        }

        #[test]
        fn arbitrary_points_round_trip(points in prop::collection::vec((any::<i64>(), any_f64()), 0..200)) {
            round_trip(&points);
        }

        #[test]
        fn realistic_points_round_trip(points in realistic()) {
            round_trip(&points);
        }

        #[test]
        fn ints_round_trip(values in prop::collection::vec(any::<i64>(), 0..200)) {
            prop_assert_eq!(decode_ints(&encode_ints(&values)).expect("decode"), values);
        }

        #[test]
        fn garbage_never_panics(data in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode_chunk(&data);
            let _ = decode_values(&data);
            let _ = decode_ints(&data);
            let _ = split_sections(&data, 3);
        }

        #[test]
        fn mutated_chunks_never_panic(points in realistic(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut data = encode_chunk(&points);
            if !data.is_empty() {
                let i = at.index(data.len());
                data[i] ^= 1 << bit;
            }
            let _ = decode_chunk(&data);
        }

        #[test]
        fn sections_round_trip(parts in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..50), 1..6)) {
            let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            let joined = join_sections(&refs);
            let split = split_sections(&joined, refs.len()).expect("split");
            prop_assert_eq!(split, refs);
        }
    }
}
