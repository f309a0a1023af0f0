//! How long this process has existed, from the kernel's own record of when it started (so
//! the dynamic loader and everything before `main` count too): what "startup to first
//! gradient" is measured with.

use std::time::Duration;

/// Time since this process started, from `/proc/self/stat` and `/proc/uptime` (10 ms
/// resolution); `None` off Linux or when they cannot be read.
pub fn process_age() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    age_from(&stat, &uptime, clock_ticks_per_second()?)
}

fn clock_ticks_per_second() -> Option<u64> {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0)
}

/// The age given the texts of `/proc/self/stat` and `/proc/uptime`.
fn age_from(stat: &str, uptime: &str, ticks_per_s: u64) -> Option<Duration> {
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last
    // `)`; the start time is field 22, the 20th after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let start_ticks: u64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    let up_s: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    let started_s = start_ticks as f64 / ticks_per_s as f64;
    Some(Duration::from_secs_f64((up_s - started_s).max(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_is_uptime_minus_the_start_tick() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 1 0 \
                    12345 1000 200 18446744073709551615";
        let age = age_from(stat, "130.50 200.00\n", 100).unwrap();
        assert!(
            (age.as_secs_f64() - (130.50 - 123.45)).abs() < 1e-9,
            "{age:?}"
        );
        assert_eq!(age_from("no name here", "1.0 1.0", 100), None);
    }

    #[test]
    fn this_process_is_younger_than_the_machine_and_ages() {
        let a = process_age().expect("Linux /proc");
        std::thread::sleep(Duration::from_millis(30));
        let b = process_age().expect("Linux /proc");
        assert!(b > a, "{a:?} then {b:?}");
    }
}
