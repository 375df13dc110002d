//! The seed's per-table work as a small dependency graph, handed out to the loading connections
//! (up to `--jobs`) in priority order, so no connection idles while work it could do exists.
//!
//! Invariants:
//! - A table's index builds become ready when its COPY has committed, and its VACUUM (ANALYZE)
//!   when all its index builds have (its lock conflicts with CREATE INDEX's, so earlier it would
//!   only hold a connection waiting). Index builds of one table run side by side: CREATE INDEX takes a
//!   SHARE lock, which does not conflict with itself.
//! - A table's keys (primary key, foreign key validation) are added when its VACUUM is done and
//!   the table its foreign key references has its keys: so the small tables are linked while the
//!   big one still loads or builds, and no key step waits on another step's lock (adding a foreign
//!   key locks both tables against CREATE INDEX and VACUUM, which by then are done on both).
//! - Priority: the COPYs first, biggest table first (the lines table's COPY is the critical path,
//!   and with two streams or more the orders' COPY shares its generation, so the two go first),
//!   then the index builds of the biggest table, the other index builds, the VACUUMs, the keys.
//! - [`Board::next`] returns `None` only when every task is done or the seed is stopping: a
//!   worker never leaves while work may still become ready.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use super::schema::TABLES;

/// One unit of a seed's work on one connection, in its own transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Task {
    /// Create staging table `TABLES[t]` and COPY its rows in.
    Copy(usize),
    /// Build index `TABLES[t].indexes[i]` on the loaded staging table.
    Index(usize, usize),
    /// VACUUM (ANALYZE) the loaded and indexed staging table: statistics for the planner, and
    /// the table's insert count reset so autovacuum does not redo it during a load test.
    Vacuum(usize),
    /// Add the staging table's primary key and foreign key (see `schema::link_staging`).
    Link(usize),
}

/// Index of the biggest table (the order lines) in [`TABLES`].
const BIGGEST: usize = 2;

impl Task {
    /// Lower runs first.
    fn priority(self) -> usize {
        match self {
            Task::Copy(t) => BIGGEST - t,
            Task::Index(BIGGEST, _) => TABLES.len(),
            Task::Index(..) => TABLES.len() + 1,
            Task::Vacuum(_) => TABLES.len() + 2,
            Task::Link(_) => TABLES.len() + 3,
        }
    }
}

/// How long a worker with nothing ready waits before looking at the stop flag again.
const WAIT: Duration = Duration::from_millis(100);

struct State {
    ready: Vec<Task>,
    /// Tasks not yet finished, ready or not.
    left: usize,
    /// Index builds not yet finished, per table.
    indexes_left: [usize; 3],
    /// Per table: VACUUMed, linked, its link handed out.
    vacuumed: [bool; 3],
    linked: [bool; 3],
    link_ready: [bool; 3],
}

/// The tasks of one seed and what is ready to run.
pub(crate) struct Board {
    state: Mutex<State>,
    wake: Condvar,
}

impl Board {
    /// All the tasks of a seed: only the COPYs are ready at first.
    pub(crate) fn new() -> Board {
        let indexes_left = TABLES.each_ref().map(|t| t.indexes.len());
        Board {
            state: Mutex::new(State {
                ready: (0..TABLES.len()).map(Task::Copy).collect(),
                left: 3 * TABLES.len() + indexes_left.iter().sum::<usize>(),
                indexes_left,
                vacuumed: [false; 3],
                linked: [false; 3],
                link_ready: [false; 3],
            }),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most urgent ready task, waiting for one to become ready; `None` when all are done or
    /// `stopped()` says the seed is stopping.
    pub(crate) fn next(&self, stopped: &dyn Fn() -> bool) -> Option<Task> {
        let mut s = self.lock();
        loop {
            if s.left == 0 || stopped() {
                return None;
            }
            if let Some(i) = (0..s.ready.len()).min_by_key(|&i| s.ready[i].priority()) {
                return Some(s.ready.remove(i));
            }
            s = self
                .wake
                .wait_timeout(s, WAIT)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Records `task` as finished and makes ready what waited for it.
    pub(crate) fn done(&self, task: Task) {
        let mut s = self.lock();
        s.left -= 1;
        match task {
            Task::Copy(t) => {
                s.ready
                    .extend((0..TABLES[t].indexes.len()).map(|i| Task::Index(t, i)));
                if TABLES[t].indexes.is_empty() {
                    s.ready.push(Task::Vacuum(t));
                }
            }
            Task::Index(t, _) => {
                s.indexes_left[t] -= 1;
                if s.indexes_left[t] == 0 {
                    s.ready.push(Task::Vacuum(t));
                }
            }
            Task::Vacuum(t) => s.vacuumed[t] = true,
            Task::Link(t) => s.linked[t] = true,
        }
        for (t, table) in TABLES.iter().enumerate() {
            let referenced_linked = table.references.is_none_or(|(_, _, p)| s.linked[p]);
            if s.vacuumed[t] && referenced_linked && !s.link_ready[t] {
                s.link_ready[t] = true;
                s.ready.push(Task::Link(t));
            }
        }
        drop(s);
        self.wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the board to the end on one worker, returning the order of the tasks.
    fn drain(board: &Board) -> Vec<Task> {
        let mut order = Vec::new();
        while let Some(t) = board.next(&|| false) {
            order.push(t);
            board.done(t);
        }
        order
    }

    #[test]
    fn every_task_runs_once_after_what_it_needs() {
        let order = drain(&Board::new());
        let total = 3 * TABLES.len() + TABLES.iter().map(|t| t.indexes.len()).sum::<usize>();
        assert_eq!(order.len(), total, "{order:?}");
        let at = |task: Task| order.iter().position(|&t| t == task).unwrap();
        for (t, table) in TABLES.iter().enumerate() {
            for i in 0..table.indexes.len() {
                assert!(at(Task::Copy(t)) < at(Task::Index(t, i)), "{order:?}");
                assert!(at(Task::Index(t, i)) < at(Task::Vacuum(t)), "{order:?}");
            }
            assert!(at(Task::Vacuum(t)) < at(Task::Link(t)), "{order:?}");
            if let Some((_, _, p)) = table.references {
                assert!(at(Task::Link(p)) < at(Task::Link(t)), "{order:?}");
            }
        }
        // The lines table's COPY, the critical path, starts first.
        assert_eq!(order[0], Task::Copy(BIGGEST));
    }

    #[test]
    fn a_waiting_worker_gets_the_index_builds_once_the_copy_is_done() {
        let board = Board::new();
        let copies: Vec<Task> = (0..TABLES.len())
            .map(|_| board.next(&|| false).unwrap())
            .collect();
        assert!(copies.iter().all(|t| matches!(t, Task::Copy(_))));
        std::thread::scope(|s| {
            let waiter = s.spawn(|| board.next(&|| false));
            std::thread::sleep(Duration::from_millis(50));
            board.done(Task::Copy(BIGGEST));
            assert_eq!(waiter.join().unwrap(), Some(Task::Index(BIGGEST, 0)));
        });
    }

    #[test]
    fn a_stopped_seed_hands_out_nothing() {
        let board = Board::new();
        assert_eq!(board.next(&|| true), None);
    }
}
