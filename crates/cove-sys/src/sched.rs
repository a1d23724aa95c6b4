//! Scheduling priority of the calling thread (inherited by the processes it spawns).

use std::io;

use crate::check;

const IOPRIO_WHO_PROCESS: libc::c_int = 1;
const IOPRIO_CLASS_IDLE: libc::c_int = 3;
const IOPRIO_CLASS_SHIFT: libc::c_int = 13;

/// Makes the calling thread (not the whole process) and whatever it spawns from now on
/// background work: nice 19 and the idle I/O class, so it yields CPU and disk to everything
/// else. Linux applies both per thread when given id 0.
pub fn background_thread() -> io::Result<()> {
    // SAFETY: setpriority takes plain integers; who = 0 is the calling thread on Linux.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
    check(rc.into())?;
    // SAFETY: ioprio_set takes plain integers; who = 0 is the calling thread.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0,
            IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
        )
    };
    check(rc).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value (field 19) in a /proc/.../stat file.
    fn nice(stat: &str) -> i64 {
        let s = std::fs::read_to_string(stat).unwrap();
        let rest = &s[s.rfind(')').unwrap() + 2..];
        rest.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[test]
    fn only_the_calling_thread_is_lowered() {
        let before = nice("/proc/thread-self/stat");
        let inside = std::thread::spawn(|| {
            background_thread().unwrap();
            nice("/proc/thread-self/stat")
        })
        .join()
        .unwrap();
        assert_eq!(inside, 19);
        assert_eq!(nice("/proc/thread-self/stat"), before);
    }
}
