//! The relay's only unsafe code: Linux system calls for batched UDP I/O
//! (`recvmmsg`, `sendmmsg`, `sendto`), `epoll` and `eventfd`, the raw IPv4
//! socket that sends a whole round's datagrams with one `sendmmsg`, behind
//! safe types, and the cache prefetch hint the worker gives before
//! forwarding a round.
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

/// A socket datagrams are sent from: its descriptor and the address it is
/// bound to (the source of the datagrams).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// The socket.
    pub fd: RawFd,
    /// Its local address.
    pub local: SocketAddr,
}

impl Source {
    /// The source of datagrams sent from `socket`.
    pub fn of(socket: &std::net::UdpSocket) -> io::Result<Self> {
        Ok(Self {
            fd: socket.as_raw_fd(),
            local: socket.local_addr()?,
        })
    }
}

/// IPv4 header (no options) and UDP header, written in front of a datagram
/// sent through the raw socket.
const HEADROOM: usize = 28;
/// Largest IPv4 packet the raw path sends: an Ethernet MTU. A longer one
/// goes through its own socket, which fragments it if it must.
const RAW_MAX: usize = 1500;
/// Source addresses remembered per destination (route lookups) before the
/// table is cleared.
const ROUTE_CACHE: usize = 4096;
/// Send buffer of the raw socket (all of a worker's datagrams share it).
const RAW_SNDBUF: libc::c_int = 8 << 20;

/// One outgoing datagram's buffer: room for the IPv4 and UDP headers, then
/// the payload (what [`SendBatch::next_buf`] hands out). `repr(C)`: the
/// two are contiguous, so the raw path sends them as one.
#[repr(C)]
struct OutBuf {
    head: [u8; HEADROOM],
    body: [u8; BUF_SIZE],
}

/// A raw IPv4 socket (`IPPROTO_RAW`, so the caller writes the IP header):
/// datagrams to many peers from many of the relay's ports go out in one
/// `sendmmsg`, where each UDP socket would take a system call of its own,
/// and none of them wakes the epoll that watches the UDP sockets (a send
/// from a watched socket does, when the kernel frees the sent buffer). The
/// UDP sockets still receive everything, including the replies.
#[derive(Debug)]
pub struct RawSender {
    fd: OwnedFd,
    /// Unconnected UDP socket, connected to a destination only to learn the
    /// source address the kernel would pick for it (no packet is sent).
    router: std::net::UdpSocket,
    /// That source address per destination, for sockets bound to 0.0.0.0.
    sources: std::collections::HashMap<Ipv4Addr, Ipv4Addr>,
}

impl RawSender {
    /// Opens the raw socket: needs `CAP_NET_RAW` (fails with `EPERM`
    /// without it).
    pub fn open() -> io::Result<Self> {
        // SAFETY: socket() takes no pointers; a non-negative result is a new fd we own.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_RAW) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        for opt in [libc::SO_SNDBUFFORCE, libc::SO_SNDBUF] {
            // SAFETY: the option value is a live c_int of the size given.
            let r = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&RAW_SNDBUF as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if r == 0 {
                break;
            }
        }
        Ok(Self {
            fd,
            router: std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?,
            sources: std::collections::HashMap::new(),
        })
    }

    /// The source address of a datagram from `local` to `dest`: `local`'s
    /// own, or for a socket bound to 0.0.0.0 the one the kernel's routing
    /// picks (looked up once per destination address).
    fn source_for(&mut self, local: Ipv4Addr, dest: SocketAddrV4) -> Option<Ipv4Addr> {
        if !local.is_unspecified() {
            return Some(local);
        }
        if let Some(&s) = self.sources.get(dest.ip()) {
            return Some(s);
        }
        self.router.connect(dest).ok()?;
        let SocketAddr::V4(me) = self.router.local_addr().ok()? else {
            return None;
        };
        if self.sources.len() >= ROUTE_CACHE {
            self.sources.clear();
        }
        self.sources.insert(*dest.ip(), *me.ip());
        Some(*me.ip())
    }
}

/// Writes the IPv4 and UDP headers of a `payload_len`-byte datagram from
/// `src` to `dest` into `head`, with the UDP checksum over `payload`.
fn write_headers(head: &mut [u8; HEADROOM], src: SocketAddrV4, dest: SocketAddrV4, payload: &[u8]) {
    let udp_len = (8 + payload.len()) as u16;
    let total = HEADROOM as u16 + payload.len() as u16;
    let (s, d) = (src.ip().octets(), dest.ip().octets());
    // IPv4 (RFC 791): version 4, IHL 5; DF set, as the kernel sets it on UDP
    // with path MTU discovery; identification and header checksum 0, filled
    // in by the kernel for IPPROTO_RAW.
    head[..12].copy_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    head[12..16].copy_from_slice(&s);
    head[16..20].copy_from_slice(&d);
    head[20..22].copy_from_slice(&src.port().to_be_bytes());
    head[22..24].copy_from_slice(&dest.port().to_be_bytes());
    head[24..26].copy_from_slice(&udp_len.to_be_bytes());
    head[26..28].copy_from_slice(&[0, 0]);
    // RFC 768: the one's complement sum over the pseudo-header (addresses,
    // protocol, UDP length), the UDP header and the payload; 0 is sent as
    // 0xffff (0 means "no checksum").
    let mut sum: u64 = u64::from(u32::from_be_bytes(s)) + u64::from(u32::from_be_bytes(d)) + 17 + u64::from(udp_len);
    sum += u64::from(src.port()) + u64::from(dest.port()) + u64::from(udp_len);
    let mut words = payload.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_be_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        let (hi, lo) = (w >> 32, w & 0xffff_ffff);
        sum += hi + lo;
    }
    let mut rest = words.remainder().chunks_exact(2);
    for w in &mut rest {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = rest.remainder() {
        sum += u64::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let check = !(sum as u16);
    head[26..28].copy_from_slice(&(if check == 0 { 0xffff } else { check }).to_be_bytes());
}

/// Points `hdr` at one outgoing datagram: the data of `iov`, to `addr`
/// (`addr_len` bytes of it), no control data.
fn point_msg(
    hdr: &mut libc::msghdr,
    addr: &mut libc::sockaddr_storage,
    addr_len: libc::socklen_t,
    iov: &mut libc::iovec,
) {
    hdr.msg_name = (addr as *mut libc::sockaddr_storage).cast();
    hdr.msg_namelen = addr_len;
    hdr.msg_iov = iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = std::ptr::null_mut();
    hdr.msg_controllen = 0;
    hdr.msg_flags = 0;
}

/// Sends every datagram of `msgs` from `fd` with as many `sendmmsg` calls
/// as the kernel needs, counting them in `st`; one it refuses is skipped and
/// its index in `msgs` given to `refused`.
///
/// # Safety
///
/// Every entry of `msgs` must point at a live message header, iovec, buffer
/// and address, valid for the lengths they give, for the whole call.
unsafe fn send_all(fd: RawFd, msgs: &mut [libc::mmsghdr], st: &mut FlushStats, mut refused: impl FnMut(usize)) {
    let mut at = 0;
    while at < msgs.len() {
        // SAFETY: the caller vouches for the entries; the kernel reads at
        // most `msgs.len() - at` of them, from `at` on.
        let r = unsafe {
            libc::sendmmsg(
                fd,
                msgs[at..].as_mut_ptr(),
                (msgs.len() - at) as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        st.syscalls += 1;
        if r <= 0 {
            refused(at);
            at += 1;
        } else {
            st.sent += r as u64;
            at += r as usize;
        }
    }
}

/// Outgoing datagrams collected during one round. With a [`RawSender`],
/// every IPv4 datagram of the round goes out in one `sendmmsg` on the raw
/// socket; otherwise (and for IPv6) one `sendmmsg` per run of datagrams from
/// the same UDP socket, `sendto` for a run of one. Payloads are copied into
/// buffers allocated once.
pub struct SendBatch {
    bufs: Box<[OutBuf]>,
    fds: Vec<RawFd>,
    lens: Vec<usize>,
    addrs: Vec<libc::sockaddr_storage>,
    addr_lens: Vec<libc::socklen_t>,
    /// Whether datagram `i` goes through the raw socket (its headers are
    /// written).
    raw_ok: Vec<bool>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    raw_iovs: Vec<libc::iovec>,
    raw_msgs: Vec<libc::mmsghdr>,
    /// Entry of `raw_msgs[k]` in the batch.
    raw_index: Vec<usize>,
    raw: Option<RawSender>,
    len: usize,
}

// SAFETY: as for `RecvBatch`: the pointers are private, point into owned
// buffers and are rewritten before each `sendmmsg`.
unsafe impl Send for SendBatch {}

impl std::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch")
            .field("queued", &self.len)
            .field("raw", &self.raw.is_some())
            .finish()
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
        let bufs: Vec<OutBuf> = (0..n)
            .map(|_| OutBuf {
                head: [0; HEADROOM],
                body: [0; BUF_SIZE],
            })
            .collect();
        Self {
            bufs: bufs.into_boxed_slice(),
            fds: vec![-1; n],
            lens: vec![0; n],
            addrs: (0..n).map(|_| zeroed()).collect(),
            addr_lens: vec![0; n],
            raw_ok: vec![false; n],
            iovs: (0..n).map(|_| zeroed()).collect(),
            msgs: (0..n).map(|_| zeroed()).collect(),
            raw_iovs: (0..n).map(|_| zeroed()).collect(),
            raw_msgs: (0..n).map(|_| zeroed()).collect(),
            raw_index: vec![0; n],
            raw: None,
            len: 0,
        }
    }

    /// Sends IPv4 datagrams queued with [`SendBatch::commit_from`] through
    /// `raw` from now on.
    pub fn use_raw(&mut self, raw: RawSender) {
        self.raw = Some(raw);
    }

    /// Whether IPv4 datagrams go through a raw socket.
    pub fn raw_enabled(&self) -> bool {
        self.raw.is_some()
    }

    /// Forgets the source addresses looked up for sockets bound to 0.0.0.0,
    /// so that a change of routes or interface addresses is followed.
    pub fn forget_routes(&mut self) {
        if let Some(raw) = self.raw.as_mut() {
            raw.sources.clear();
        }
    }

    /// Whether no more datagrams fit before a flush.
    pub fn is_full(&self) -> bool {
        self.len == self.bufs.len()
    }

    /// A buffer for the next datagram; fill it and call
    /// [`SendBatch::commit`] or [`SendBatch::commit_from`] with its length.
    /// `None` when full.
    pub fn next_buf(&mut self) -> Option<&mut [u8; BUF_SIZE]> {
        let i = self.len;
        self.bufs.get_mut(i).map(|b| &mut b.body)
    }

    /// Queues the buffer given by the last `next_buf` with `len` bytes, to
    /// go from socket `fd` to `dest`.
    pub fn commit(&mut self, fd: RawFd, dest: &SocketAddr, len: usize) {
        let i = self.len;
        if i >= self.bufs.len() || len > BUF_SIZE {
            return;
        }
        self.fds[i] = fd;
        self.lens[i] = len;
        self.addr_lens[i] = to_sockaddr(dest, &mut self.addrs[i]);
        self.raw_ok[i] = false;
        self.len += 1;
    }

    /// As [`SendBatch::commit`], from `from`: through the raw socket when
    /// there is one and both addresses are IPv4 (the datagram carries
    /// `from`'s address and port, as if its socket had sent it).
    pub fn commit_from(&mut self, from: Source, dest: &SocketAddr, len: usize) {
        let i = self.len;
        self.commit(from.fd, dest, len);
        if self.len == i {
            return;
        }
        let (Some(raw), SocketAddr::V4(local), SocketAddr::V4(dest)) = (self.raw.as_mut(), from.local, *dest) else {
            return;
        };
        if len + HEADROOM > RAW_MAX {
            return;
        }
        let Some(src) = raw.source_for(*local.ip(), dest) else {
            return;
        };
        let buf = &mut self.bufs[i];
        write_headers(
            &mut buf.head,
            SocketAddrV4::new(src, local.port()),
            dest,
            &buf.body[..len],
        );
        self.raw_ok[i] = true;
    }

    /// Sends everything queued.
    pub fn flush(&mut self) -> FlushStats {
        let mut st = FlushStats::default();
        if let Some(raw_fd) = self.raw.as_ref().map(|r| r.fd.as_raw_fd()) {
            self.flush_raw(raw_fd, &mut st);
        }
        for i in 0..self.len {
            if self.raw_ok[i] {
                continue;
            }
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i].body.as_mut_ptr().cast(),
                iov_len: self.lens[i],
            };
            point_msg(
                &mut self.msgs[i].msg_hdr,
                &mut self.addrs[i],
                self.addr_lens[i],
                &mut self.iovs[i],
            );
        }
        let mut start = 0;
        while start < self.len {
            if self.raw_ok[start] {
                start += 1;
                continue;
            }
            let fd = self.fds[start];
            let mut end = start + 1;
            while end < self.len && self.fds[end] == fd && !self.raw_ok[end] {
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
                        self.bufs[start].body.as_ptr().cast(),
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
            // A datagram the kernel refuses (full buffer, unreachable) is dropped.
            let mut failed = 0;
            // SAFETY: entries start..end were initialised above and point at
            // buffers and addresses owned by `self`.
            unsafe { send_all(fd, &mut self.msgs[start..end], &mut st, |_| failed += 1) };
            st.failed += failed;
            start = end;
        }
        self.len = 0;
        st
    }

    /// Sends the datagrams marked for the raw socket, headers included, in
    /// as few `sendmmsg` calls as the kernel takes them. One the raw socket
    /// refuses (its buffer full, a route it has no MTU for) is unmarked and
    /// left for its own socket, so the raw path never drops what the UDP
    /// path would have sent.
    fn flush_raw(&mut self, raw_fd: RawFd, st: &mut FlushStats) {
        let mut n = 0;
        for i in 0..self.len {
            if !self.raw_ok[i] {
                continue;
            }
            self.raw_iovs[n] = libc::iovec {
                iov_base: (&mut self.bufs[i] as *mut OutBuf).cast(),
                iov_len: HEADROOM + self.lens[i],
            };
            point_msg(
                &mut self.raw_msgs[n].msg_hdr,
                &mut self.addrs[i],
                self.addr_lens[i],
                &mut self.raw_iovs[n],
            );
            self.raw_index[n] = i;
            n += 1;
        }
        let (raw_ok, raw_index) = (&mut self.raw_ok, &self.raw_index);
        // SAFETY: entries 0..n were initialised above; each points at an
        // `OutBuf` owned by `self` (repr(C): header bytes, then the payload,
        // `HEADROOM + lens[i]` ≤ its size) and at a sockaddr written by
        // `to_sockaddr`.
        unsafe {
            // One the raw socket refuses goes out of its own socket instead.
            send_all(raw_fd, &mut self.raw_msgs[..n], st, |k| raw_ok[raw_index[k]] = false);
        }
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

    /// One's complement sum of `data` as 16-bit big-endian words.
    fn ones_sum(data: &[u8]) -> u32 {
        let mut sum: u32 = data
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
            .sum();
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum
    }

    #[test]
    fn udp_checksum_verifies() {
        for len in [0usize, 1, 7, 160, 171, 1200] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let src: SocketAddrV4 = "192.0.2.10:40000".parse().unwrap();
            let dst: SocketAddrV4 = "198.51.100.7:5004".parse().unwrap();
            let mut head = [0u8; HEADROOM];
            write_headers(&mut head, src, dst, &payload);
            assert_eq!(&head[..2], &[0x45, 0]);
            assert_eq!(usize::from(u16::from_be_bytes([head[2], head[3]])), 28 + len);
            assert_eq!(&head[12..16], &src.ip().octets());
            assert_eq!(&head[16..20], &dst.ip().octets());
            // RFC 768: the sum over pseudo-header, UDP header (checksum
            // included) and payload is all ones.
            let mut all = Vec::new();
            all.extend_from_slice(&head[12..20]);
            all.extend_from_slice(&[0, 17]);
            all.extend_from_slice(&head[24..26]);
            all.extend_from_slice(&head[20..28]);
            all.extend_from_slice(&payload);
            assert_eq!(ones_sum(&all), 0xffff, "payload of {len} bytes");
        }
    }

    #[test]
    fn raw_batch_sends_a_round_in_one_call() {
        let raw = match RawSender::open() {
            Ok(r) => r,
            Err(e) => {
                // Without CAP_NET_RAW the relay falls back to its UDP sockets;
                // the refusal must be EPERM, nothing else.
                // SAFETY: geteuid has no preconditions.
                assert_ne!(
                    unsafe { libc::geteuid() },
                    0,
                    "root must be able to open a raw socket: {e}"
                );
                assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
                return;
            }
        };
        // Two senders, one bound to the wildcard (its source comes from a
        // route lookup), one receiver; plus an IPv6 datagram, which goes
        // through its own socket.
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let w = UdpSocket::bind("0.0.0.0:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        let mut send = SendBatch::new(8);
        send.use_raw(raw);
        assert!(send.raw_enabled());
        let dest = b.local_addr().unwrap();
        for (i, sock) in [&a, &w, &a, &w, &a].into_iter().enumerate() {
            let buf = send.next_buf().unwrap();
            let len = 3 + 2 * i; // odd lengths: the checksum's last byte
            buf[..len].fill(i as u8);
            send.commit_from(Source::of(sock).unwrap(), &dest, len);
        }
        let st = send.flush();
        assert_eq!((st.sent, st.failed, st.syscalls), (5, 0, 1), "{st:?}");
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        for _ in 0..5 {
            // The receiving kernel checks the UDP checksum: a wrong one is dropped.
            let (n, from) = b.recv_from(&mut buf).unwrap();
            got.push((buf[0], n, from.port()));
            assert_eq!(from.ip(), std::net::IpAddr::from([127, 0, 0, 1]));
        }
        got.sort_unstable();
        let (pa, pw) = (a.local_addr().unwrap().port(), w.local_addr().unwrap().port());
        assert_eq!(got, vec![(0, 3, pa), (1, 5, pw), (2, 7, pa), (3, 9, pw), (4, 11, pa)]);

        if let Ok(v6) = UdpSocket::bind("[::1]:0") {
            let r6 = UdpSocket::bind("[::1]:0").unwrap();
            r6.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
            let buf = send.next_buf().unwrap();
            buf[..4].copy_from_slice(b"six!");
            send.commit_from(Source::of(&v6).unwrap(), &r6.local_addr().unwrap(), 4);
            let st = send.flush();
            assert_eq!((st.sent, st.syscalls), (1, 1));
            let mut buf = [0u8; 8];
            let (n, from) = r6.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&b"six!"[..], v6.local_addr().unwrap()));
        }
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
