//! Waiting for something without a fixed sleep: poll with a backoff until
//! a deadline.

use std::time::{Duration, Instant};

/// The longest pause between two tries: quick to notice, cheap to wait.
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// Call `f` until it returns Some or `timeout` passes. The first tries
/// come fast (5 ms apart), later ones at most 100 ms apart.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
