//! What the process used, from `/proc` on Linux (zeros elsewhere): CPU time of the process and
//! of its threads by name, and peak memory.

/// Clock ticks per second of `/proc` CPU figures (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// utime + stime (in seconds) of a `/proc/…/stat` line.
fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    // The command may hold spaces and parentheses: fields start after the last `)`.
    let after = stat.rsplit_once(')')?.1;
    let mut fields = after.split_whitespace();
    // After the command: state is field 3 of the line; utime and stime are 14 and 15.
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / TICKS)
}

/// CPU time (user + system) of the whole process, in seconds.
pub fn process_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| stat_cpu_seconds(&s))
        .unwrap_or(0.0)
}

/// CPU time of the process's live threads named `name` (as `comm`, cut to 15 bytes), in
/// seconds: how an embedded simulator on threads of its own is told from the generator.
pub fn threads_cpu_seconds(name: &str) -> f64 {
    let want = &name.as_bytes()[..name.len().min(15)];
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read(t.path().join("comm"))
                .is_ok_and(|c| c.strip_suffix(b"\n").unwrap_or(&c) == want)
        })
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .filter_map(|s| stat_cpu_seconds(&s))
        .sum()
}

/// Peak resident memory in MiB.
pub fn max_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_fields_after_a_command_with_spaces() {
        let line = "42 (a (b) c) S 1 42 42 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 3 0 1 2 3";
        assert_eq!(stat_cpu_seconds(line), Some(3.0));
    }

    #[test]
    fn threads_are_told_apart_by_name() {
        let busy = std::thread::Builder::new()
            .name("procfs-test-bus".into())
            .spawn(|| {
                let t = std::time::Instant::now();
                let mut x = 0u64;
                while t.elapsed() < std::time::Duration::from_millis(300) {
                    x = x.wrapping_mul(31).wrapping_add(7);
                }
                std::hint::black_box(x);
                std::thread::sleep(std::time::Duration::from_millis(300));
            })
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(400));
        let own = threads_cpu_seconds("procfs-test-bus");
        busy.join().unwrap();
        if cfg!(target_os = "linux") {
            assert!(own >= 0.1, "{own}");
            assert!(own <= process_cpu_seconds());
            assert_eq!(threads_cpu_seconds("no-such-thread"), 0.0);
        }
    }
}
