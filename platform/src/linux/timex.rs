//! `adjtimex(2)`: the kernel clock's discipline (NTP/PTP offset, frequency, errors).
//!
//! The one place in Sysward that calls into libc directly, since nix does not wrap
//! `adjtimex`; the unsafe code is the two lines of the call.

use crate::{Error, Timex};

/// Reads the clock's discipline without changing it (`modes` = 0 asks for nothing to
/// be set, which needs no privilege).
// The kernel's `long` fields are i64 on 64-bit targets and i32 on 32-bit ones.
#[allow(clippy::useless_conversion)]
#[allow(unsafe_code)]
pub fn read_timex() -> Result<Timex, Error> {
    // SAFETY: `libc::timex` is a plain C struct of integers (and padding), for which
    // all zero bytes are a valid value.
    let mut buf: libc::timex = unsafe { std::mem::zeroed() };
    buf.modes = 0;
    // SAFETY: `buf` is a valid, exclusively borrowed `struct timex` that lives across
    // the call; with `modes` 0 the kernel only writes into it.
    let state = unsafe { libc::adjtimex(&mut buf) };
    if state < 0 {
        return Err(Error::Call {
            call: "adjtimex",
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(Timex {
        state,
        offset: i64::from(buf.offset),
        freq: i64::from(buf.freq),
        maxerror: i64::from(buf.maxerror),
        esterror: i64::from(buf.esterror),
        status: buf.status,
        constant: i64::from(buf.constant),
        tick: i64::from(buf.tick),
        ppsfreq: i64::from(buf.ppsfreq),
        jitter: i64::from(buf.jitter),
        shift: buf.shift,
        stabil: i64::from(buf.stabil),
        jitcnt: i64::from(buf.jitcnt),
        calcnt: i64::from(buf.calcnt),
        errcnt: i64::from(buf.errcnt),
        stbcnt: i64::from(buf.stbcnt),
        tai: buf.tai,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_live_clock() {
        let timex = read_timex().expect("adjtimex");
        // TIME_OK .. TIME_ERROR.
        assert!((0..=5).contains(&timex.state), "{timex:?}");
        // The tick is 10 000 µs at HZ=100 and is never zero.
        assert!(timex.tick > 0, "{timex:?}");
    }
}
