//! Waiting for something without a fixed sleep: poll with a backoff until
//! a deadline. Every wait in banger goes through here; a caller whose
//! tries are cheap or costly picks its own `Backoff`.

use std::time::{Duration, Instant};

/// How often to try again: the first pause, doubled after each try up to
/// the longest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    /// 5 ms doubling to 100 ms: quick to notice, cheap to wait.
    pub const DEFAULT: Backoff = Backoff::new(Duration::from_millis(5), Duration::from_millis(100));

    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { first, max }
    }

    /// The same pause every time (following a file, where a try costs a
    /// read and there is no hurry).
    pub const fn every(pause: Duration) -> Backoff {
        Backoff::new(pause, pause)
    }

    /// Call `f` until it returns Some or `timeout` passes; `Duration::MAX`
    /// waits for as long as it takes.
    pub fn poll<T>(self, timeout: Duration, f: impl FnMut() -> Option<T>) -> Option<T> {
        self.poll_until(Instant::now().checked_add(timeout), f)
    }

    /// Call `f` until it returns Some or `deadline` (None: never) passes.
    /// `f` runs at least once, and once more at the deadline when a pause
    /// ends there, so a caller sizing each try from the time left (a
    /// connect timeout) gets its last try; no pause runs past the deadline.
    pub fn poll_until<T>(
        self,
        deadline: Option<Instant>,
        mut f: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let mut pause = self.first;
        loop {
            if let Some(v) = f() {
                return Some(v);
            }
            let now = Instant::now();
            let pause_now = match deadline {
                Some(d) if now >= d => return None,
                Some(d) => pause.min(d - now),
                None => pause,
            };
            std::thread::sleep(pause_now);
            pause = (pause * 2).min(self.max);
        }
    }
}

/// `Backoff::DEFAULT.poll`: call `f` until it returns Some or `timeout`
/// passes. The first tries come fast (5 ms apart), later ones at most
/// 100 ms apart.
pub fn poll<T>(timeout: Duration, f: impl FnMut() -> Option<T>) -> Option<T> {
    Backoff::DEFAULT.poll(timeout, f)
}

/// A stream whose reads all end by one deadline, however the peer drips
/// its bytes: each read gets only the time left, and none starts after
/// the deadline. For reading from guests (sshd's banner, QMP), which are
/// hostile.
pub struct ByDeadline<S> {
    stream: S,
    deadline: Instant,
}

/// A stream with a per-read timeout.
pub trait ReadTimeout {
    fn set_read_timeout(&self, d: Option<Duration>) -> std::io::Result<()>;
}

impl ReadTimeout for std::net::TcpStream {
    fn set_read_timeout(&self, d: Option<Duration>) -> std::io::Result<()> {
        std::net::TcpStream::set_read_timeout(self, d)
    }
}

impl ReadTimeout for std::os::unix::net::UnixStream {
    fn set_read_timeout(&self, d: Option<Duration>) -> std::io::Result<()> {
        std::os::unix::net::UnixStream::set_read_timeout(self, d)
    }
}

impl<S> ByDeadline<S> {
    pub fn new(stream: S, deadline: Instant) -> Self {
        ByDeadline { stream, deadline }
    }

    /// Move the deadline (a new request on the same connection).
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    pub fn get_ref(&self) -> &S {
        &self.stream
    }
}

impl<S: std::io::Read + ReadTimeout> std::io::Read for ByDeadline<S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let timed_out =
            || std::io::Error::new(std::io::ErrorKind::TimedOut, "no complete answer in time");
        if left.is_zero() {
            return Err(timed_out());
        }
        self.stream.set_read_timeout(Some(left))?;
        // A socket timeout shows as WouldBlock (EAGAIN): it is the deadline.
        match self.stream.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(timed_out()),
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dripping_peer_is_cut_off_at_the_deadline() {
        use std::io::{BufRead, Write};
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        // One byte every 50 ms, never a newline.
        std::thread::spawn(move || {
            while a.write_all(b"x").is_ok() {
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = std::io::BufReader::new(ByDeadline::new(
                b,
                Instant::now() + Duration::from_millis(300),
            ));
            let mut line = String::new();
            let _ = tx.send(r.read_line(&mut line).map(|_| line));
        });
        // Without the deadline this read_line never ends.
        let got = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("read ended");
        assert_eq!(got.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    }

    #[test]
    fn returns_the_first_some() {
        let mut n = 0;
        let v = poll(Duration::from_secs(5), || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(v, Some(3));
    }

    #[test]
    fn gives_up_after_the_timeout_but_tries_at_least_once() {
        let mut tries = 0;
        let v: Option<()> = poll(Duration::ZERO, || {
            tries += 1;
            None
        });
        assert_eq!(v, None);
        assert_eq!(tries, 1);
    }

    #[test]
    fn pauses_grow_to_the_max_and_stop_at_the_deadline() {
        let start = Instant::now();
        let deadline = start + Duration::from_millis(150);
        let mut at = Vec::new();
        let b = Backoff::new(Duration::from_millis(10), Duration::from_millis(40));
        let v: Option<()> = b.poll_until(Some(deadline), || {
            at.push(Instant::now());
            None
        });
        assert_eq!(v, None);
        let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
        // 10, 20, 40, 40, ...: never under the pause asked for, but for
        // the last, which the deadline cuts short...
        let (_, full) = gaps.split_last().unwrap();
        for (gap, want) in full.iter().zip([10, 20, 40, 40]) {
            assert!(*gap >= Duration::from_millis(want), "{gaps:?}");
        }
        // ...and one last try at the deadline, then no more.
        assert_eq!(at.iter().filter(|t| **t >= deadline).count(), 1, "{gaps:?}");
    }

    #[test]
    fn no_deadline_waits_until_done() {
        let mut n = 0;
        let v = Backoff::every(Duration::from_millis(1)).poll(Duration::MAX, || {
            n += 1;
            (n == 20).then_some(n)
        });
        assert_eq!(v, Some(20));
    }
}
