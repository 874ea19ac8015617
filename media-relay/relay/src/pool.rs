//! The media port pool: UDP ports in `media.port_min..=port_max`, handed out
//! as an even RTP port with the next odd port for RTCP, or as one port for
//! rtcp-mux (RFC 5761). A port that another program holds is skipped.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};

/// Ports handed out and their sockets.
#[derive(Debug)]
pub struct PortPool {
    bind: IpAddr,
    min: u16,
    max: u16,
    next: u16,
    used: BTreeSet<u16>,
}

/// Sockets for one media endpoint.
#[derive(Debug)]
pub struct PortPair {
    /// RTP (and, with rtcp-mux, RTCP) socket.
    pub rtp: UdpSocket,
    /// RTCP socket, on the next port; `None` with rtcp-mux.
    pub rtcp: Option<UdpSocket>,
}

impl PortPair {
    /// The RTP port.
    pub fn rtp_port(&self) -> u16 {
        self.rtp.local_addr().map(|a| a.port()).unwrap_or(0)
    }
}

/// Why no ports could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// Every port in the range is in use.
    #[error("no free media ports in {min}-{max}")]
    Exhausted {
        /// Range start.
        min: u16,
        /// Range end.
        max: u16,
    },
}

impl PortPool {
    /// A pool over `min..=max` (`min` even), binding sockets to `bind`.
    pub fn new(bind: IpAddr, min: u16, max: u16) -> Self {
        let min = min + (min % 2);
        Self {
            bind,
            min,
            max,
            next: min,
            used: BTreeSet::new(),
        }
    }

    /// Ports in use.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }

    /// Takes a port (`mux`) or an even/odd pair, binding non-blocking sockets.
    pub fn allocate(&mut self, mux: bool) -> Result<PortPair, PoolError> {
        let span = u32::from(self.max - self.min) / 2 + 1;
        for _ in 0..span {
            let port = self.next;
            self.next = if u32::from(self.next) + 2 > u32::from(self.max) {
                self.min
            } else {
                self.next + 2
            };
            if self.used.contains(&port) || (!mux && (port == u16::MAX || port + 1 > self.max)) {
                continue;
            }
            let Ok(rtp) = bind(self.bind, port) else { continue };
            let rtcp = if mux {
                None
            } else {
                match bind(self.bind, port + 1) {
                    Ok(s) => Some(s),
                    Err(_) => continue,
                }
            };
            self.used.insert(port);
            if !mux {
                self.used.insert(port + 1);
            }
            return Ok(PortPair { rtp, rtcp });
        }
        Err(PoolError::Exhausted {
            min: self.min,
            max: self.max,
        })
    }

    /// Returns an endpoint's ports (call after its sockets are closed or handed back).
    pub fn release(&mut self, rtp_port: u16, had_rtcp: bool) {
        self.used.remove(&rtp_port);
        if had_rtcp {
            self.used.remove(&(rtp_port + 1));
        }
    }
}

fn bind(ip: IpAddr, port: u16) -> std::io::Result<UdpSocket> {
    let s = UdpSocket::bind(SocketAddr::new(ip, port))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_even_odd_and_released() {
        let mut p = PortPool::new("127.0.0.1".parse().unwrap(), 41000, 41009);
        let a = p.allocate(false).unwrap();
        assert_eq!(a.rtp_port() % 2, 0);
        assert_eq!(a.rtcp.as_ref().unwrap().local_addr().unwrap().port(), a.rtp_port() + 1);
        let b = p.allocate(true).unwrap();
        assert!(b.rtcp.is_none());
        assert_eq!(p.in_use(), 3);
        let port = a.rtp_port();
        drop(a);
        p.release(port, true);
        assert_eq!(p.in_use(), 1);
    }

    #[test]
    fn exhaustion_and_ports_held_elsewhere() {
        let blocker = UdpSocket::bind("127.0.0.1:41102").unwrap();
        let mut p = PortPool::new("127.0.0.1".parse().unwrap(), 41100, 41105);
        let a = p.allocate(false).unwrap();
        let b = p.allocate(false).unwrap();
        assert_ne!(a.rtp_port(), 41102, "the held port is skipped");
        assert_ne!(b.rtp_port(), 41102);
        assert_eq!(
            p.allocate(false).unwrap_err(),
            PoolError::Exhausted { min: 41100, max: 41105 }
        );
        drop(blocker);
    }
}
