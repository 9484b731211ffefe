//! The sweep leaderboard as a view of the Training pane (`S`): the newest sweep's tasks, best
//! first, and its seed groups; ↑/↓ select a task, `o` shows its training run's curves. The
//! watcher builds the leaderboard from disk; this is plain state and its transitions.

use crate::jobs::sweep::report::{Leaderboard, TaskRow};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepPane {
    /// The Training pane shows the leaderboard instead of one run.
    pub show: bool,
    /// The newest sweep's leaderboard, as last read.
    pub board: Option<Leaderboard>,
    /// The selected row.
    pub sel: usize,
}

impl SweepPane {
    /// `S`: shows or hides the leaderboard; returns the status line.
    pub fn toggle(&mut self) -> String {
        self.show = !self.show;
        match (&self.board, self.show) {
            (_, false) => "Training: the selected run (S for the sweep leaderboard)".into(),
            (None, true) => "no sweep yet: start one with `quantdeck sweep` (S to go back)".into(),
            (Some(b), true) => format!(
                "sweep {} — ↑↓ select a task, o shows its training run, S goes back",
                b.sweep
            ),
        }
    }

    pub fn move_sel(&mut self, delta: isize) {
        let len = self.board.as_ref().map_or(0, |b| b.tasks.len());
        let max = len.saturating_sub(1) as isize;
        self.sel = (self.sel as isize).saturating_add(delta).clamp(0, max) as usize;
    }

    pub fn selected(&self) -> Option<&TaskRow> {
        self.board.as_ref().and_then(|b| b.tasks.get(self.sel))
    }

    /// A new read of the leaderboard; the selection stays on the same task when it moved in the
    /// ranking. Returns whether anything changed.
    pub fn set_board(&mut self, board: Leaderboard) -> bool {
        if self.board.as_ref() == Some(&board) {
            return false;
        }
        let same_sweep = self.board.as_ref().is_some_and(|b| b.sweep == board.sweep);
        let task = self.selected().map(|r| r.index);
        self.sel = match task {
            Some(t) if same_sweep => board.tasks.iter().position(|r| r.index == t).unwrap_or(0),
            _ => 0,
        };
        self.board = Some(board);
        true
    }

    /// `o`: the selected task's training run (the leaderboard closes to show it), or why not.
    pub fn open(&mut self) -> Result<String, String> {
        let Some(row) = self.selected() else {
            return Err("no task selected".into());
        };
        match &row.train_run {
            Some(run) => {
                let run = run.clone();
                self.show = false;
                Ok(run)
            }
            None => Err(format!(
                "task {} has no training run yet ({})",
                row.index,
                row.state.label()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::sweep::TaskState;

    fn row(index: usize, run: Option<&str>) -> TaskRow {
        TaskRow {
            index,
            symbol: "SYNA".into(),
            seed: index as u64,
            mode: "quick_test".into(),
            overrides: String::new(),
            group: 0,
            state: TaskState::Pending,
            progress: None,
            train_run: run.map(String::from),
            gate: None,
            fitness: None,
            decision: None,
            sharpe: None,
            momentum: None,
            buy_hold: None,
        }
    }

    fn board(rows: Vec<TaskRow>) -> Leaderboard {
        Leaderboard {
            sweep: "sweep-x".into(),
            summary: String::new(),
            tasks: rows,
            groups: Vec::new(),
        }
    }

    #[test]
    fn the_selection_follows_its_task_and_o_opens_its_run() {
        let mut p = SweepPane::default();
        p.toggle();
        assert!(p.show);
        assert!(p.set_board(board(vec![
            row(0, Some("train-a")),
            row(1, None),
            row(2, Some("train-c"))
        ])));
        p.move_sel(2);
        assert_eq!(p.selected().map(|r| r.index), Some(2));
        p.move_sel(10);
        assert_eq!(p.sel, 2, "clamped to the last row");
        // Task 2 moves to the top of the ranking: still selected.
        assert!(p.set_board(board(vec![
            row(2, Some("train-c")),
            row(0, Some("train-a")),
            row(1, None)
        ])));
        assert_eq!(p.sel, 0);
        assert!(!p.set_board(board(vec![
            row(2, Some("train-c")),
            row(0, Some("train-a")),
            row(1, None)
        ])));
        assert_eq!(p.open(), Ok("train-c".into()));
        assert!(!p.show);
        p.show = true;
        p.move_sel(2);
        assert!(p.open().unwrap_err().contains("no training run yet"));
        assert!(p.show);
    }
}
