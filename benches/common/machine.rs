//! The machine a benchmark runs on, from Linux's `/proc`: its CPUs, its load, and the CPU time
//! processes and threads have used (clock ticks of 1/100 s).

use std::time::Duration;

fn ticks(fields: &[&str], at: usize) -> Option<u64> {
    fields.get(at)?.parse().ok()
}

/// User + system time in a `stat` file of `/proc` (a process's or a thread's).
fn stat_cpu(path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces: the fields after it start past the last `)`.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(Duration::from_millis(
        (ticks(&fields, 11)? + ticks(&fields, 12)?) * 10,
    ))
}

/// CPU time (user + system, all threads) a process has used so far.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    stat_cpu(&format!("/proc/{pid}/stat"))
}

/// CPU time used so far by this process's threads whose name starts with `prefix` (threads
/// that have ended are not counted).
pub fn threads_cpu(prefix: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let task = entry.path();
        let named = std::fs::read_to_string(task.join("comm"))
            .is_ok_and(|comm| comm.trim_end().starts_with(prefix));
        if named {
            total += stat_cpu(&task.join("stat").to_string_lossy()).unwrap_or_default();
        }
    }
    Some(total)
}

/// Busy CPU time of the whole machine so far (all CPUs, from `/proc/stat`).
pub fn machine_busy() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .map(|t| t.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4)?;
    Some(Duration::from_millis((total - idle) * 10))
}

/// `average L1 L5 L15 (1, 5, 15 min)` from `/proc/loadavg`.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "?".into(),
        |text| {
            let fields: Vec<&str> = text.split_whitespace().take(3).collect();
            format!("average {} (1, 5, 15 min)", fields.join(" "))
        },
    )
}

/// The first `model name` of `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The CPUs this process may use (what `nproc` prints).
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// `cpu` as a share of `wall`, in percent of one core (`?` when unknown).
pub fn percent(cpu: Option<Duration>, wall: Duration) -> String {
    cpu.map_or_else(
        || "?".into(),
        |cpu| format!("{:.0}%", 100.0 * cpu.as_secs_f64() / wall.as_secs_f64()),
    )
}

/// CPU time used so far by the daemon, this process, the threads of this process whose names
/// start with a prefix (a receiver's), and the whole machine.
pub struct CpuSnapshot {
    rollcall: Option<Duration>,
    process: Option<Duration>,
    receiver: Option<Duration>,
    machine: Option<Duration>,
}

/// The CPU time each part used between two [`CpuSnapshot`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub rollcall: Option<Duration>,
    /// This process less the receiver's threads.
    pub client: Option<Duration>,
    pub receiver: Option<Duration>,
    /// The rest of the machine.
    pub other: Option<Duration>,
}

impl CpuSnapshot {
    pub fn take(rollcall: u32, receiver_threads: &str) -> CpuSnapshot {
        CpuSnapshot {
            rollcall: cpu_time(rollcall),
            process: cpu_time(std::process::id()),
            receiver: threads_cpu(receiver_threads),
            machine: machine_busy(),
        }
    }

    pub fn since(&self, before: &CpuSnapshot) -> Cpu {
        let diff = |after: Option<Duration>, before: Option<Duration>| {
            after
                .zip(before)
                .map(|(after, before)| after.saturating_sub(before))
        };
        let rollcall = diff(self.rollcall, before.rollcall);
        let process = diff(self.process, before.process);
        let receiver = diff(self.receiver, before.receiver);
        let other = diff(self.machine, before.machine)
            .zip(rollcall.zip(process))
            .map(|(busy, (rollcall, process))| busy.saturating_sub(rollcall + process));
        Cpu {
            rollcall,
            client: process
                .zip(receiver)
                .map(|(process, receiver)| process.saturating_sub(receiver)),
            receiver,
            other,
        }
    }
}

/// The sum of two durations, when both are known.
pub fn add(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    a.zip(b).map(|(a, b)| a + b)
}
