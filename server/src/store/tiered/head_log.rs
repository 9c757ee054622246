//! Head log rows: `[uvarint series id × 2 + late][uvarint n][n × (zigzag varint ts delta,
//! f64 LE)]...`, one row per stored batch until its agent's head is cut.

use super::*;

pub(super) fn put_uvar(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn get_uvar(data: &[u8], pos: &mut usize) -> Result<u64, StoreError> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *data
            .get(*pos)
            .ok_or_else(|| StoreError::Corrupt("head log row is truncated".into()))?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err(StoreError::Corrupt("head log varint is too long".into()))
}

pub(super) fn put_points(out: &mut Vec<u8>, id: u32, late: bool, points: &[(i64, f64)]) {
    put_uvar(out, u64::from(id) << 1 | u64::from(late));
    put_uvar(out, points.len() as u64);
    let mut prev = 0i64;
    for &(ts, v) in points {
        let d = ts.wrapping_sub(prev);
        put_uvar(out, ((d << 1) ^ (d >> 63)) as u64);
        prev = ts;
        out.extend_from_slice(&v.to_le_bytes());
    }
}

pub(super) fn read_log_row(data: &[u8]) -> Result<Vec<(u32, bool, Points)>, StoreError> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < data.len() {
        let key = get_uvar(data, &mut pos)?;
        let late = key & 1 == 1;
        let id = u32::try_from(key >> 1)
            .map_err(|_| StoreError::Corrupt("head log series id".into()))?;
        let n = usize::try_from(get_uvar(data, &mut pos)?).unwrap_or(usize::MAX);
        // Each point takes at least 9 bytes: refuse a count the row cannot hold.
        if n > (data.len() - pos) / 9 {
            return Err(StoreError::Corrupt("head log point count".into()));
        }
        let mut points = Vec::with_capacity(n);
        let mut prev = 0i64;
        for _ in 0..n {
            let z = get_uvar(data, &mut pos)?;
            prev = prev.wrapping_add(((z >> 1) as i64) ^ -((z & 1) as i64));
            let bytes: [u8; 8] = data
                .get(pos..pos + 8)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| StoreError::Corrupt("head log row is truncated".into()))?;
            pos += 8;
            points.push((prev, f64::from_le_bytes(bytes)));
        }
        out.push((id, late, points));
    }
    Ok(out)
}
