//! A byte budget for the hub's queue: counting events is not enough when
//! one event can be a 1 MiB frame. Connection threads take the frame's size
//! before handing it over and wait while the budget is spent, so a hub that
//! falls behind pushes back on the agents' TCP connections instead of
//! growing the server's memory.
use std::sync::{Condvar, Mutex};
use std::time::Duration;

pub struct ByteBudget {
    used: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

impl ByteBudget {
    pub fn new(max: usize) -> ByteBudget {
        ByteBudget {
            used: Mutex::new(0),
            freed: Condvar::new(),
            max,
        }
    }

    /// Take `bytes`, waiting while the budget is spent. One frame larger
    /// than the whole budget still passes when nothing else is queued.
    pub fn take(&self, bytes: usize) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        while *used > 0 && *used + bytes > self.max {
            // Bounded waits: a lost wake-up costs at most this long.
            used = self
                .freed
                .wait_timeout(used, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *used += bytes;
    }

    pub fn give_back(&self, bytes: usize) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        *used = used.saturating_sub(bytes);
        self.freed.notify_all();
    }

    pub fn in_use(&self) -> usize {
        *self.used.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::ByteBudget;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn a_spent_budget_makes_takers_wait_until_bytes_come_back() {
        let budget = Arc::new(ByteBudget::new(100));
        budget.take(80);
        let waiter = {
            let budget = budget.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                budget.take(50);
                started.elapsed()
            })
        };
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(budget.in_use(), 80, "the second take waits");
        budget.give_back(80);
        let waited = waiter.join().unwrap();
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert_eq!(budget.in_use(), 50);
        // A frame bigger than the whole budget passes when alone.
        budget.give_back(50);
        budget.take(1000);
        assert_eq!(budget.in_use(), 1000);
    }
}
