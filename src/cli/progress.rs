//! Progress of `khabar ingest` on standard error, drawn only when it is a terminal: for an input
//! of known size a bar of the bytes acknowledged with rate and time left, otherwise a spinner;
//! both with the items done, their rate and the rejections.

use std::{
    io::IsTerminal,
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressStyle};

const BAR: &str = "{spinner} {elapsed_precise} [{wide_bar}] {binary_bytes}/{binary_total_bytes} \
                   ({binary_bytes_per_sec}, {eta} left) {msg}";
const SPINNER: &str = "{spinner} {elapsed_precise} {binary_bytes} ({binary_bytes_per_sec}) {msg}";
/// How often the spinner turns and the rates are redrawn while nothing else happens.
const TICK: Duration = Duration::from_millis(120);

/// The progress display of one ingest.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    started: Instant,
}

impl Progress {
    /// A bar over `total` bytes when the input's size is known, else a spinner; hidden unless
    /// standard error is a terminal.
    pub fn new(total: Option<u64>) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::hidden();
        }
        let (bar, template) = match total {
            Some(total) => (ProgressBar::new(total), BAR),
            None => (ProgressBar::new_spinner(), SPINNER),
        };
        // The templates are constants; a mistake in one shows as indicatif's default style.
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_message(status(0, 0, Duration::ZERO));
        bar.enable_steady_tick(TICK);
        Self {
            bar,
            started: Instant::now(),
        }
    }

    /// A display that draws nothing.
    pub fn hidden() -> Self {
        Self {
            bar: ProgressBar::hidden(),
            started: Instant::now(),
        }
    }

    /// Records that the input up to byte `offset` is answered, with `done` items answered so
    /// far, `rejected` of them rejected.
    pub fn update(&self, offset: u64, done: u64, rejected: u64) {
        self.bar.set_position(offset);
        if !self.bar.is_hidden() {
            self.bar
                .set_message(status(done, rejected, self.started.elapsed()));
        }
    }

    /// Runs `print` with the display taken off the screen, so that lines printed on standard
    /// error do not mix with it.
    pub fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        self.bar.suspend(print)
    }

    /// Removes the display; the summary follows on standard output.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The counts part of the display: `"1234 items (617/s), 2 rejected"`.
pub fn status(done: u64, rejected: u64, elapsed: Duration) -> String {
    let items = if done == 1 { "item" } else { "items" };
    let mut text = format!("{done} {items}");
    let seconds = elapsed.as_secs_f64();
    // Too early for a rate that means anything.
    if seconds >= 0.5 && done > 0 {
        // Counts stay far below 2^52, where f64 stops being exact.
        let rate = done as f64 / seconds;
        if rate >= 10.0 {
            text.push_str(&format!(" ({rate:.0}/s)"));
        } else {
            text.push_str(&format!(" ({rate:.1}/s)"));
        }
    }
    if rejected > 0 {
        text.push_str(&format!(", {rejected} rejected"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_counts_items_their_rate_and_rejections() {
        assert_eq!(status(0, 0, Duration::ZERO), "0 items");
        assert_eq!(status(1, 0, Duration::from_millis(100)), "1 item");
        assert_eq!(
            status(1, 1, Duration::from_secs(2)),
            "1 item (0.5/s), 1 rejected"
        );
        assert_eq!(
            status(1234, 0, Duration::from_secs(2)),
            "1234 items (617/s)"
        );
        assert_eq!(
            status(5400, 3, Duration::from_millis(2500)),
            "5400 items (2160/s), 3 rejected"
        );
    }

    #[test]
    fn templates_are_valid() {
        for template in [BAR, SPINNER] {
            ProgressStyle::with_template(template).unwrap();
        }
    }

    #[test]
    fn a_hidden_display_accepts_updates() {
        let progress = Progress::hidden();
        progress.update(10, 1, 0);
        assert_eq!(progress.suspend(|| 7), 7);
        progress.finish();
        assert_eq!(progress.bar.position(), 10);
    }
}
