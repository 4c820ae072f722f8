//! Waiting on conditions: every wait has a deadline that only catches a hang, and
//! a timed-out wait reports what it last saw.

use std::time::{Duration, Instant};

/// Calls `probe` every 20 ms until it returns `Ok` or `timeout` passes. The error
/// names `what` and carries the probe's last `Err` text, so an assertion failure
/// shows what the test actually saw instead of a bare "timed out".
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let start = Instant::now();
    let mut last;
    loop {
        match probe() {
            Ok(v) => return Ok(v),
            Err(e) => last = e,
        }
        if start.elapsed() >= timeout {
            return Err(format!(
                "timed out after {timeout:?} waiting for {what}; last seen: {last}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
