//! Barman's human-readable sizes and durations.

/// Barman-style human size (`30.5 MiB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Barman-style human duration (`2 seconds`, `1 minute, 3 seconds`,
/// `1 day, 2 hours`; `less than one second`), as Python's
/// `human_readable_timedelta` (the configuration's own, which prints
/// `last_backup_maximum_age` and friends).
pub use barman_config::human_duration;
