//! The few system calls std does not offer, shared by the benchmarks
//! (`#[path = "common/os.rs"] mod os;`). Each bench uses a part of them.
#![allow(dead_code, unsafe_code)]

use std::io;
use std::os::fd::RawFd;

/// Pins the calling thread (and threads it creates later) to `cpu`.
pub(crate) fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes one bit inside `set` (cpu < CPU_SETSIZE, checked by the caller's choice of 0).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a live cpu_set_t of the size we pass.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Raises RLIMIT_NOFILE (inherited by the peers we spawn) to `want`, or
/// as far as the hard limit allows without CAP_SYS_RESOURCE; returns the
/// soft limit now in force.
pub(crate) fn raise_nofile(want: u64) -> io::Result<u64> {
    let lim = libc::rlimit {
        rlim_cur: want as libc::rlim_t,
        rlim_max: want as libc::rlim_t,
    };
    // SAFETY: `lim` is a live rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
        return Ok(want);
    }
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `cur` is a live rlimit struct the kernel fills.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) } != 0 {
        return Err(io::Error::last_os_error());
    }
    cur.rlim_cur = cur.rlim_max.min(want as libc::rlim_t);
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &cur) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cur.rlim_cur)
}

/// Clock ticks per second of /proc CPU times.
pub(crate) fn clk_tck() -> u64 {
    // SAFETY: sysconf takes no pointers.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as u64
    } else {
        100
    }
}

/// Online CPUs (not limited by our own affinity).
pub(crate) fn online_cpus() -> u64 {
    // SAFETY: sysconf takes no pointers.
    let v = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    v.max(1) as u64
}

/// Forces a socket buffer size past `rmem_max`/`wmem_max` (needs CAP_NET_ADMIN).
pub(crate) fn force_buffers(fd: RawFd, bytes: i32) -> io::Result<()> {
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
        // SAFETY: passes a pointer to a live i32 and its size.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&bytes as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Waits until `fd` is readable or `timeout_ns` passed.
pub(crate) fn wait_readable(fd: RawFd, timeout_ns: u64) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (timeout_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: one live pollfd, a live timespec, no signal mask.
    let _ = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
}

/// Makes a child we are about to exec die with us, even if this process is
/// killed without unwinding (the peers must not outlive the bench).
pub(crate) fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only
    // makes one async-signal-safe system call.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Sends SIGTERM to `pid`.
pub(crate) fn terminate(pid: u32) {
    // SAFETY: kill takes no pointers; `pid` is a child we spawned and have not reaped.
    let _ = unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
}
