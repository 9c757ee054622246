//! A fault-injecting TCP proxy between one agent and the server, on threads. It listens on
//! the host side of the agent's veth pair and forwards to the server on 127.0.0.1. While
//! chaos is on, each connection gets a plan drawn from the seeded generator:
//!
//! - `pass`: bytes go through as they come; the connection is cut after a random lifetime
//!   (2–20 s), so that a kept-alive connection does not escape the faults for ever;
//! - `delay`: every chunk waits 20–300 ms before it is forwarded;
//! - `stall`: after a random number of bytes in one direction, nothing moves for 1–8 s
//!   (longer than the agent's request timeout, sometimes);
//! - `reset`: after a random number of bytes in one direction the connection is dropped on
//!   both sides: before the request is whole (the server never sees it) or in the middle of
//!   the answer (the server stored the batch, the agent never sees the ack).
//!
//! With chaos off every new connection passes, and the faults of open ones stop applying.
//! A connection that cannot reach the server (it is down) is closed at once: `refused`.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    thread,
    time::{Duration, Instant},
};

use super::rng::Rng;

/// Counts of connections by plan, and of faults that fired.
#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) connections: AtomicU64,
    pub(crate) pass: AtomicU64,
    pub(crate) recycled: AtomicU64,
    pub(crate) delay: AtomicU64,
    pub(crate) stall: AtomicU64,
    pub(crate) stall_fired: AtomicU64,
    pub(crate) reset: AtomicU64,
    pub(crate) reset_fired: AtomicU64,
    pub(crate) reset_in_answer: AtomicU64,
    pub(crate) refused: AtomicU64,
}

impl Counts {
    pub(crate) fn summary(&self) -> String {
        let g = |c: &AtomicU64| c.load(Relaxed);
        format!(
            "connections={} pass={} (cut at end of life {}) delay={} stall={} (fired {}) \
             reset={} (fired {}, {} of them server-to-agent) refused={}",
            g(&self.connections),
            g(&self.pass),
            g(&self.recycled),
            g(&self.delay),
            g(&self.stall),
            g(&self.stall_fired),
            g(&self.reset),
            g(&self.reset_fired),
            g(&self.reset_in_answer),
            g(&self.refused),
        )
    }
}

/// What every proxy shares.
pub(crate) struct Shared {
    pub(crate) chaos: AtomicBool,
    pub(crate) upstream: SocketAddr,
    pub(crate) counts: Counts,
    stop: AtomicBool,
}

impl Shared {
    pub(crate) fn new(upstream: SocketAddr) -> Arc<Self> {
        Arc::new(Self {
            chaos: AtomicBool::new(false),
            upstream,
            counts: Counts::default(),
            stop: AtomicBool::new(false),
        })
    }

    fn chaos(&self) -> bool {
        self.chaos.load(Relaxed)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// Agent to server: the request.
    Up,
    /// Server to agent: the answer.
    Down,
}

#[derive(Clone, Copy)]
enum Plan {
    Pass {
        life: Duration,
    },
    Delay {
        each: Duration,
    },
    Stall {
        dir: Dir,
        after: u64,
        length: Duration,
    },
    Reset {
        dir: Dir,
        after: u64,
    },
    /// Chaos is off.
    Clean,
}

/// Where in a direction's byte stream a fault fires. The TLS handshake takes the first
/// 2–3 KB each way; after it come requests of a few KB (gzip batches) and answers of a few
/// hundred bytes, so these ranges land in the handshake, in a request or in an answer
/// (after the server stored the batch, before the agent read the ack), of the first
/// requests of a kept-alive connection.
fn offset(rng: &mut Rng, dir: Dir) -> u64 {
    match dir {
        Dir::Up => rng.below(40_000),
        Dir::Down => rng.below(8_000),
    }
}

fn draw(rng: &mut Rng) -> Plan {
    let dir = |rng: &mut Rng| {
        if rng.below(2) == 0 {
            Dir::Up
        } else {
            Dir::Down
        }
    };
    match rng.weighted(&[55, 15, 10, 20]) {
        0 => Plan::Pass {
            life: rng.millis(2_000, 20_000),
        },
        1 => Plan::Delay {
            each: rng.millis(20, 300),
        },
        2 => {
            let dir = dir(rng);
            Plan::Stall {
                dir,
                after: offset(rng, dir),
                length: rng.millis(1_000, 8_000),
            }
        }
        _ => {
            let dir = dir(rng);
            Plan::Reset {
                dir,
                after: offset(rng, dir),
            }
        }
    }
}

/// One agent's proxy; it stops accepting when dropped.
pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<thread::JoinHandle<()>>,
}

impl Proxy {
    pub(crate) fn start(ip: Ipv4Addr, shared: Arc<Shared>, mut rng: Rng) -> Self {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let s = shared.clone();
        let accept = thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let rng = rng.fork(0);
                let s = s.clone();
                thread::spawn(move || serve(conn, &s, rng));
            }
        });
        Self {
            addr,
            shared,
            accept: Some(accept),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Relaxed);
        // Wakes the accept loop, which then sees `stop`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Both sockets of one connection; `cut` drops both sides.
struct Conn {
    client: TcpStream,
    server: TcpStream,
    closed: AtomicBool,
}

impl Conn {
    fn cut(&self) -> bool {
        let first = !self.closed.swap(true, Relaxed);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
        first
    }
}

fn serve(client: TcpStream, shared: &Arc<Shared>, mut rng: Rng) {
    let counts = &shared.counts;
    counts.connections.fetch_add(1, Relaxed);
    let plan = if shared.chaos() {
        draw(&mut rng)
    } else {
        Plan::Clean
    };
    let Ok(server) = TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(2)) else {
        counts.refused.fetch_add(1, Relaxed);
        return;
    };
    match plan {
        Plan::Pass { .. } => &counts.pass,
        Plan::Delay { .. } => &counts.delay,
        Plan::Stall { .. } => &counts.stall,
        Plan::Reset { .. } => &counts.reset,
        Plan::Clean => &counts.pass,
    }
    .fetch_add(1, Relaxed);
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let conn = Arc::new(Conn {
        client: client.try_clone().unwrap(),
        server: server.try_clone().unwrap(),
        closed: AtomicBool::new(false),
    });
    if let Plan::Pass { life } = plan {
        let (conn, shared) = (conn.clone(), shared.clone());
        thread::spawn(move || {
            // The connection's life is the workload, not a synchronisation.
            let end = Instant::now() + life;
            while Instant::now() < end && !conn.closed.load(Relaxed) {
                thread::sleep(Duration::from_millis(200));
            }
            if shared.chaos() && conn.cut() {
                shared.counts.recycled.fetch_add(1, Relaxed);
            }
        });
    }
    let up = {
        let (conn, shared) = (conn.clone(), shared.clone());
        let (from, to) = (client, server.try_clone().unwrap());
        thread::spawn(move || pump(from, to, Dir::Up, plan, &conn, &shared))
    };
    pump(
        server,
        conn.client.try_clone().unwrap(),
        Dir::Down,
        plan,
        &conn,
        shared,
    );
    let _ = up.join();
}

/// Copies `from` to `to`, applying the plan's faults to direction `dir`; at the end of
/// either direction the whole connection is closed.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    dir: Dir,
    plan: Plan,
    conn: &Conn,
    shared: &Shared,
) {
    let counts = &shared.counts;
    let mut buf = vec![0u8; 16 * 1024];
    let mut moved = 0u64;
    let mut stalled = false;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = &buf[..n];
        if shared.chaos() {
            match plan {
                Plan::Delay { each } => thread::sleep(each),
                Plan::Stall {
                    dir: d,
                    after,
                    length,
                } if d == dir && !stalled && moved + n as u64 > after => {
                    let head = (after - moved) as usize;
                    if to.write_all(&chunk[..head]).is_err() {
                        break;
                    }
                    moved += head as u64;
                    chunk = &chunk[head..];
                    stalled = true;
                    counts.stall_fired.fetch_add(1, Relaxed);
                    let end = Instant::now() + length;
                    while Instant::now() < end && shared.chaos() && !conn.closed.load(Relaxed) {
                        thread::sleep(Duration::from_millis(50));
                    }
                }
                Plan::Reset { dir: d, after } if d == dir && moved + n as u64 > after => {
                    let head = (after - moved) as usize;
                    let _ = to.write_all(&chunk[..head]);
                    if conn.cut() {
                        counts.reset_fired.fetch_add(1, Relaxed);
                        if dir == Dir::Down {
                            counts.reset_in_answer.fetch_add(1, Relaxed);
                        }
                    }
                    return;
                }
                _ => {}
            }
        }
        if to.write_all(chunk).is_err() {
            break;
        }
        moved += chunk.len() as u64;
    }
    conn.cut();
}
