//! The relay's only unsafe code: Linux system calls for batched UDP I/O
//! (`recvmmsg`, `sendmmsg`, `sendto`), `epoll` and `eventfd`, behind safe types,
//! and the cache prefetch hint the worker gives before forwarding a round.
//!
//! Every `unsafe` block says why it is sound. Buffers are allocated once per
//! worker, on the heap, and never grow; the pointers into them (written once
//! for receiving, right before each call for sending) stay valid when the
//! owning struct moves.
#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Size of one packet buffer: an Ethernet MTU datagram plus room for the
/// largest SRTP trailer added in place.
pub const BUF_SIZE: usize = 2048;

/// Cache line size assumed by [`prefetch`].
const LINE: usize = 64;

/// Asks the CPU to start loading the first `bytes` of `value` (at most 16
/// cache lines) into its caches, without waiting for them: a hint that costs
/// a few cycles and never faults. The worker issues it for the endpoints and
/// SRTP contexts of a whole round before it forwards any of their packets,
/// so that their cache misses overlap instead of each stalling in turn.
/// A no-op off x86-64.
#[inline]
pub fn prefetch<T: ?Sized>(value: &T, bytes: usize) {
    let start = (value as *const T).cast::<u8>();
    let len = bytes.min(std::mem::size_of_val(value)).min(16 * LINE);
    // Every line from the first byte to the last: a step of one line, then
    // the last byte (its line is missed by the steps when `value` does not
    // start on a line boundary).
    let mut off = 0;
    while off < len {
        prefetch_line(start.wrapping_add(off));
        off += LINE;
    }
    if len > 0 {
        prefetch_line(start.wrapping_add(len - 1));
    }
}

#[inline(always)]
fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is an SSE instruction (part of the x86-64 baseline)
    // and a pure hint: it reads nothing architecturally and cannot fault,
    // whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// An epoll instance.
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    /// Creates an epoll instance that reports at most `max_events` per wait.
    pub fn new(max_events: usize) -> io::Result<Self> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is a new fd we own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self {
            fd,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; max_events.max(1)],
        })
    }

    /// Watches `fd` for readability (level-triggered), reporting `token`.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.add_events(fd, token, libc::EPOLLIN as u32)
    }

    /// Watches `fd` for readability, edge-triggered: `token` is reported
    /// when data arrives, not again until more data arrives, so the caller
    /// must read until it is sure the socket is empty (a short `recvmmsg`
    /// batch says so). It spares the kernel a second poll of every socket
    /// that was ready in the previous wait.
    pub fn add_edge(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.add_events(fd, token, (libc::EPOLLIN | libc::EPOLLET) as u32)
    }

    fn add_events(&self, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        let r = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Stops watching `fd`.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as in `add`; the event argument is ignored for DEL but must be non-null on old kernels.
        let r = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout_ms` (-1: forever); returns the ready tokens.
    pub fn wait(&mut self, timeout_ms: i32) -> io::Result<impl Iterator<Item = u64> + '_> {
        // SAFETY: `events` is a live buffer of `len` epoll_event structs that the kernel fills.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                timeout_ms,
            )
        };
        let n = if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
            0
        } else {
            n as usize
        };
        Ok(self.events[..n].iter().map(|e| e.u64))
    }
}

/// An eventfd used to wake a worker from `epoll_wait`.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// A non-blocking eventfd.
    pub fn new() -> io::Result<Self> {
        // SAFETY: no pointers; a non-negative result is a new fd we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: freshly created, owned by nobody else.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Wakes the waiter.
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64; the result is ignored on purpose
        // (a full counter already means "wake").
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Clears pending wake-ups.
    pub fn clear(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }

    /// The raw fd, for epoll registration.
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn to_sockaddr(addr: &SocketAddr, storage: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in.
            unsafe { std::ptr::write((storage as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in6.
            unsafe { std::ptr::write((storage as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

fn from_sockaddr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in (family AF_INET) into the storage.
            let sin: &libc::sockaddr_in = unsafe { &*(storage as *const libc::sockaddr_storage).cast() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6 (family AF_INET6) into the storage.
            let sin6: &libc::sockaddr_in6 = unsafe { &*(storage as *const libc::sockaddr_storage).cast() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

const SOCKADDR_STORAGE_LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;

/// Receive buffers and headers for one `recvmmsg` batch, allocated once.
pub struct RecvBatch {
    bufs: Box<[[u8; BUF_SIZE]]>,
    lens: Vec<usize>,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    /// Headers the last call filled (the kernel rewrote their lengths and flags).
    used: usize,
}

// SAFETY: the raw pointers in `iovs`/`msgs` point only into this struct's own
// heap buffers, which never move or grow; nothing else holds them, so moving
// the batch to another thread (a relay worker) is sound.
unsafe impl Send for RecvBatch {}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch").field("capacity", &self.bufs.len()).finish()
    }
}

fn zeroed<T>() -> T {
    // SAFETY: only used for plain C structs (sockaddr_storage, iovec, mmsghdr) for which all-zero is valid.
    unsafe { MaybeUninit::<T>::zeroed().assume_init() }
}

impl RecvBatch {
    /// Room for `n` datagrams per call.
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        let mut b = Self {
            bufs: vec![[0u8; BUF_SIZE]; n].into_boxed_slice(),
            lens: vec![0; n],
            addrs: (0..n).map(|_| zeroed()).collect(),
            iovs: (0..n).map(|_| zeroed()).collect(),
            msgs: (0..n).map(|_| zeroed()).collect(),
            used: 0,
        };
        // The headers point into the heap buffers above, which never move or
        // grow (moving `b` moves only the owning pointers), so they are
        // written once here; each call resets only what the kernel rewrote.
        for i in 0..n {
            b.iovs[i] = libc::iovec {
                iov_base: b.bufs[i].as_mut_ptr().cast(),
                iov_len: BUF_SIZE,
            };
            let hdr = &mut b.msgs[i].msg_hdr;
            hdr.msg_name = (&mut b.addrs[i] as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = SOCKADDR_STORAGE_LEN;
            hdr.msg_iov = &mut b.iovs[i];
            hdr.msg_iovlen = 1;
            hdr.msg_control = std::ptr::null_mut();
            hdr.msg_controllen = 0;
            hdr.msg_flags = 0;
        }
        b
    }

    /// Receives up to the batch size from `fd` without blocking; returns how
    /// many datagrams arrived (0 when none was waiting).
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let n = self.bufs.len();
        for m in &mut self.msgs[..self.used] {
            m.msg_hdr.msg_namelen = SOCKADDR_STORAGE_LEN;
            m.msg_hdr.msg_flags = 0;
            m.msg_len = 0;
        }
        self.used = 0;
        // SAFETY: every mmsghdr points at live heap buffers owned by `self` (set in
        // `new`; they never move or grow), sized as declared; the kernel writes at
        // most `n` entries.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let got = r as usize;
        self.used = got;
        for i in 0..got {
            // A datagram larger than the buffer is truncated (MSG_TRUNC); it is dropped as malformed.
            self.lens[i] = if self.msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                0
            } else {
                self.msgs[i].msg_len as usize
            };
        }
        Ok(got)
    }

    /// Datagrams per call.
    pub fn capacity(&self) -> usize {
        self.bufs.len()
    }

    /// Datagram `i` of the last batch: its whole buffer (for in-place
    /// growth), its length and its source.
    pub fn packet_mut(&mut self, i: usize) -> (&mut [u8; BUF_SIZE], usize, Option<SocketAddr>) {
        let src = from_sockaddr(&self.addrs[i]);
        (&mut self.bufs[i], self.lens[i], src)
    }
}

/// Outgoing datagrams collected during one round and sent with one
/// `sendmmsg` per socket run. Payloads are copied into buffers allocated once.
pub struct SendBatch {
    bufs: Box<[[u8; BUF_SIZE]]>,
    fds: Vec<RawFd>,
    lens: Vec<usize>,
    addrs: Vec<libc::sockaddr_storage>,
    addr_lens: Vec<libc::socklen_t>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    len: usize,
}

// SAFETY: as for `RecvBatch`: the pointers are private, point into owned
// buffers and are rewritten before each `sendmmsg`.
unsafe impl Send for SendBatch {}

impl std::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch").field("queued", &self.len).finish()
    }
}

/// What a flush did.
#[derive(Debug, Default, Clone, Copy)]
pub struct FlushStats {
    /// Datagrams the kernel took.
    pub sent: u64,
    /// Datagrams it refused (and were dropped).
    pub failed: u64,
    /// `sendmmsg` calls made.
    pub syscalls: u64,
}

impl SendBatch {
    /// Room for `n` datagrams per flush.
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        Self {
            bufs: vec![[0u8; BUF_SIZE]; n].into_boxed_slice(),
            fds: vec![-1; n],
            lens: vec![0; n],
            addrs: (0..n).map(|_| zeroed()).collect(),
            addr_lens: vec![0; n],
            iovs: (0..n).map(|_| zeroed()).collect(),
            msgs: (0..n).map(|_| zeroed()).collect(),
            len: 0,
        }
    }

    /// Whether no more datagrams fit before a flush.
    pub fn is_full(&self) -> bool {
        self.len == self.bufs.len()
    }

    /// A buffer for the next datagram to `dest` from socket `fd`; fill it
    /// and call [`SendBatch::commit`] with its length. `None` when full.
    pub fn next_buf(&mut self) -> Option<&mut [u8; BUF_SIZE]> {
        let i = self.len;
        self.bufs.get_mut(i)
    }

    /// Queues the buffer given by the last `next_buf` with `len` bytes.
    pub fn commit(&mut self, fd: RawFd, dest: &SocketAddr, len: usize) {
        let i = self.len;
        if i >= self.bufs.len() || len > BUF_SIZE {
            return;
        }
        self.fds[i] = fd;
        self.lens[i] = len;
        self.addr_lens[i] = to_sockaddr(dest, &mut self.addrs[i]);
        self.len += 1;
    }

    /// Sends everything queued: one `sendmmsg` per run of consecutive
    /// datagrams from the same socket (`sendto` for a run of one).
    pub fn flush(&mut self) -> FlushStats {
        let mut st = FlushStats::default();
        for i in 0..self.len {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: self.lens[i],
            };
            let hdr = &mut self.msgs[i].msg_hdr;
            hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = self.addr_lens[i];
            hdr.msg_iov = &mut self.iovs[i];
            hdr.msg_iovlen = 1;
            hdr.msg_control = std::ptr::null_mut();
            hdr.msg_controllen = 0;
            hdr.msg_flags = 0;
        }
        let mut start = 0;
        while start < self.len {
            let fd = self.fds[start];
            let mut end = start + 1;
            while end < self.len && self.fds[end] == fd {
                end += 1;
            }
            if end - start == 1 {
                // One datagram from this socket (the common case: one packet
                // per call and wake-up): `sendto` spares the kernel copying
                // and walking a message header and its iovec.
                let addr: *const libc::sockaddr = (&self.addrs[start] as *const libc::sockaddr_storage).cast();
                // SAFETY: the buffer is owned by `self` and holds at least `lens[start]`
                // bytes (checked in `commit`); `addr` points at a sockaddr of
                // `addr_lens[start]` bytes written by `to_sockaddr`; the kernel only reads both.
                let r = unsafe {
                    libc::sendto(
                        fd,
                        self.bufs[start].as_ptr().cast(),
                        self.lens[start],
                        libc::MSG_DONTWAIT,
                        addr,
                        self.addr_lens[start],
                    )
                };
                st.syscalls += 1;
                if r < 0 {
                    st.failed += 1;
                } else {
                    st.sent += 1;
                }
                start = end;
                continue;
            }
            let mut at = start;
            while at < end {
                // SAFETY: entries start..end were initialised above and point at buffers
                // owned by `self`; the kernel reads at most `end - at` entries.
                let r = unsafe {
                    libc::sendmmsg(
                        fd,
                        self.msgs[at..].as_mut_ptr(),
                        (end - at) as libc::c_uint,
                        libc::MSG_DONTWAIT,
                    )
                };
                st.syscalls += 1;
                if r <= 0 {
                    // The first datagram failed (full buffer, unreachable): drop it and go on.
                    st.failed += 1;
                    at += 1;
                } else {
                    st.sent += r as u64;
                    at += r as usize;
                }
            }
            start = end;
        }
        self.len = 0;
        st
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn batch_round_trip_over_loopback() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut send = SendBatch::new(8);
        for i in 0..5u8 {
            let buf = send.next_buf().unwrap();
            buf[..3].copy_from_slice(&[i, i, i]);
            send.commit(a.as_raw_fd(), &b.local_addr().unwrap(), 3);
        }
        let st = send.flush();
        assert_eq!((st.sent, st.failed, st.syscalls), (5, 0, 1));
        let mut ep = Epoll::new(4).unwrap();
        ep.add(b.as_raw_fd(), 7).unwrap();
        let ready: Vec<u64> = ep.wait(1000).unwrap().collect();
        assert_eq!(ready, vec![7]);
        let mut recv = RecvBatch::new(16);
        let mut got = 0;
        while got < 5 {
            got += recv.recv(b.as_raw_fd()).unwrap();
        }
        let (buf, len, src) = recv.packet_mut(4);
        assert_eq!((len, &buf[..3]), (3, &[4u8, 4, 4][..]));
        assert_eq!(src, Some(a.local_addr().unwrap()));
        assert_eq!(recv.recv(b.as_raw_fd()).unwrap(), 0, "nothing left: no error, no block");
    }

    #[test]
    fn eventfd_wakes_epoll() {
        let w = EventFd::new().unwrap();
        let mut ep = Epoll::new(2).unwrap();
        ep.add(w.raw(), 1).unwrap();
        assert_eq!(ep.wait(0).unwrap().count(), 0);
        w.wake();
        assert_eq!(ep.wait(100).unwrap().collect::<Vec<_>>(), vec![1]);
        w.clear();
        assert_eq!(ep.wait(0).unwrap().count(), 0);
    }

    #[test]
    fn ipv6_addresses_round_trip() {
        let mut st: libc::sockaddr_storage = zeroed();
        let a: SocketAddr = "[2001:db8::7]:4000".parse().unwrap();
        to_sockaddr(&a, &mut st);
        assert_eq!(from_sockaddr(&st), Some(a));
        let a: SocketAddr = "192.0.2.1:5004".parse().unwrap();
        to_sockaddr(&a, &mut st);
        assert_eq!(from_sockaddr(&st), Some(a));
    }
}
