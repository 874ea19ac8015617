//! A leg's audio through the relay, as 48 kHz frames for rooms and prompts.
//!
//! Protocols that carry RTP (SIP, H.323; the web client after DTLS) get a
//! relay endpoint for each leg. When the leg goes into a conference, or
//! must hear a prompt and type digits, an [`AudioPort`] taps that endpoint:
//! the relay hands over what the phone sends (validated and decrypted on
//! the relay's worker thread), the port's task jitter-buffers and decodes
//! it into 20 ms frames, and encodes the frames the room (or a prompt)
//! plays back into RTP that the relay encrypts and sends.
//!
//! RFC 4733 telephone events are taken out of the stream as digits; out of
//! band digits (SIP INFO, H.245 UserInputIndication) join them through
//! [`AudioPort::dtmf_sender`], so that the IVR and PIN entry read one
//! stream of key presses whatever the protocol.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mixer::codec::{self, CodecError, CodecKind, EncoderOptions};
use mixer::inbound::{FrameState, InboundAudio, InboundConfig};
use mixer::{Frame, FRAME_SAMPLES};
use relay::{EndpointId, Relay, TapSink};
use tokio::sync::mpsc;

use crate::conference::Heard;

/// Frames queued towards the room before new ones are dropped.
const FROM_LEG_QUEUE: usize = 8;
/// Frames queued towards the leg before new ones are dropped.
const TO_LEG_QUEUE: usize = 16;
/// Packets queued from the relay's worker before new ones are dropped.
const PACKET_QUEUE: usize = 64;
/// Largest packet the ring holds (a tapped RTP packet is far smaller).
const RING_SLOT: usize = 2048;
/// STUN and DTLS datagrams queued for a web session before new ones are dropped.
const TRANSPORT_QUEUE: usize = 64;
/// How long after its last packet a leg still counts as sending.
const SENDING_GRACE: Duration = Duration::from_millis(200);
/// Largest encoded frame.
const MAX_PAYLOAD: usize = 1500;

/// How a leg's audio is encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioFormat {
    /// The codec, both directions.
    pub codec: CodecKind,
    /// Its RTP payload type on this leg.
    pub payload_type: u8,
    /// RTP payload type of RFC 4733 telephone events, if negotiated.
    pub telephone_event: Option<u8>,
    /// Clock rate of the telephone events (8000 unless negotiated otherwise).
    pub telephone_event_clock: u32,
}

impl AudioFormat {
    /// The mixer codec for an SDP encoding name and clock rate, if the
    /// mixer speaks it.
    pub fn codec_for(name: &str, clock_rate: u32, channels: u8) -> Option<CodecKind> {
        match (name.to_ascii_lowercase().as_str(), clock_rate) {
            ("pcmu", 8000) => Some(CodecKind::Pcmu),
            ("pcma", 8000) => Some(CodecKind::Pcma),
            ("g722", 8000) => Some(CodecKind::G722),
            ("opus", 48_000) => Some(CodecKind::Opus {
                channels: channels.clamp(1, 2),
            }),
            _ => None,
        }
    }
}

/// A leg's audio as frames: see the module docs. Dropping the port stops
/// its task and the relay's tap.
#[derive(Debug)]
pub struct AudioPort {
    /// What the leg says: one frame per 20 ms while it sends.
    pub from_leg: mpsc::Receiver<Frame>,
    /// What the leg hears: frames sent here are encoded and sent to it
    /// (a room's shared mix through the room's shared encoders).
    pub to_leg: mpsc::Sender<Heard>,
    /// Key presses from the leg, in order.
    pub dtmf: mpsc::Receiver<char>,
    dtmf_tx: mpsc::Sender<char>,
    task: tokio::task::JoinHandle<()>,
    relay: Relay,
    endpoint: EndpointId,
    ssrc: u32,
}

/// A STUN message or DTLS record that reached a web-client leg's endpoint,
/// with its source (handed up by [`AudioPort::start_with_transport`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportDatagram {
    /// A STUN message (ICE connectivity check).
    Stun(SocketAddr, Vec<u8>),
    /// DTLS records (the DTLS-SRTP handshake).
    Dtls(SocketAddr, Vec<u8>),
}

impl AudioPort {
    /// Taps `endpoint` and starts decoding and encoding in `format`.
    ///
    /// # Errors
    ///
    /// The codec library refused to start (Opus), or the endpoint is gone.
    pub fn start(relay: &Relay, endpoint: EndpointId, format: AudioFormat) -> Result<AudioPort, MediaError> {
        Self::start_inner(relay, endpoint, format, None)
    }

    /// As [`AudioPort::start`], and also hands up the STUN and DTLS
    /// datagrams that reach the endpoint (from any source) for a leg that
    /// does its own ICE and DTLS-SRTP (the web client).
    ///
    /// # Errors
    ///
    /// As [`AudioPort::start`].
    pub fn start_with_transport(
        relay: &Relay,
        endpoint: EndpointId,
        format: AudioFormat,
    ) -> Result<(AudioPort, mpsc::Receiver<TransportDatagram>), MediaError> {
        let (tx, rx) = mpsc::channel(TRANSPORT_QUEUE);
        let port = Self::start_inner(relay, endpoint, format, Some(tx))?;
        Ok((port, rx))
    }

    fn start_inner(
        relay: &Relay,
        endpoint: EndpointId,
        format: AudioFormat,
        transport: Option<mpsc::Sender<TransportDatagram>>,
    ) -> Result<AudioPort, MediaError> {
        let mut config = InboundConfig::new(format.payload_type);
        config.telephone_event_payload_type = format.telephone_event;
        config.telephone_event_clock_rate = Some(format.telephone_event_clock);
        let inbound = InboundAudio::new(config, codec::decoder(format.codec)?);
        let encoder = codec::encoder(format.codec, EncoderOptions::default())?;
        let ring = Arc::new(PacketRing::new());
        relay
            .tap(
                endpoint,
                Some(Box::new(ChannelSink {
                    packets: ring.clone(),
                    transport,
                })),
            )
            .map_err(|e| MediaError::Relay(e.to_string()))?;
        let (from_tx, from_leg) = mpsc::channel(FROM_LEG_QUEUE);
        let (to_leg, to_rx) = mpsc::channel(TO_LEG_QUEUE);
        let (dtmf_tx, dtmf) = mpsc::channel(32);
        let out = Packetizer::new(format.codec.timestamp_step_20ms(), format.payload_type);
        let ssrc = out.ssrc;
        let leg = LegAudio {
            relay: relay.clone(),
            endpoint,
            format,
            inbound,
            encoder,
            out,
            last_packet: None,
            frame: [0; FRAME_SAMPLES],
        };
        let task = tokio::spawn(leg.run(ring, from_tx, to_rx, dtmf_tx.clone()));
        Ok(AudioPort {
            from_leg,
            to_leg,
            dtmf,
            dtmf_tx,
            task,
            relay: relay.clone(),
            endpoint,
            ssrc,
        })
    }

    /// The SSRC of the RTP this port sends (for `a=ssrc` in an SDP).
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Plays `prompt` to the leg once, in real time (one frame per 20 ms),
    /// and returns when it has been played.
    pub async fn play_prompt(&self, prompt: mixer::prompts::PromptId) {
        let mut player = mixer::prompts::PromptPlayer::new(prompt, None);
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        while let Some(f) = player.next_frame() {
            tick.tick().await;
            let _ = self.to_leg.try_send(Heard {
                frame: *f,
                shared: None,
            });
        }
    }

    /// Where drivers put digits that arrive out of band (SIP INFO, H.245
    /// UserInputIndication).
    pub fn dtmf_sender(&self) -> mpsc::Sender<char> {
        self.dtmf_tx.clone()
    }
}

impl Drop for AudioPort {
    fn drop(&mut self) {
        self.task.abort();
        let _ = self.relay.tap(self.endpoint, None);
    }
}

/// Two legs without a common codec joined through the mixer's codecs:
/// what one says is decoded by its [`AudioPort`] and re-encoded by the
/// other's, both ways, frame by frame (a two-party call needs no mixing).
/// Key presses each port takes out of its stream (RFC 4733) are not
/// carried across: the legs send digits in band. Dropping the bridge stops
/// its task and both ports.
#[derive(Debug)]
pub struct AudioBridge {
    task: tokio::task::JoinHandle<()>,
    frames: Arc<AtomicU64>,
}

impl AudioBridge {
    /// Starts passing frames between `a` and `b`.
    pub fn start(a: AudioPort, b: AudioPort) -> AudioBridge {
        let frames = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(Self::run(a, b, frames.clone()));
        AudioBridge { task, frames }
    }

    /// Frames passed so far, both ways.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    async fn run(mut a: AudioPort, mut b: AudioPort, frames: Arc<AtomicU64>) {
        loop {
            tokio::select! {
                f = a.from_leg.recv() => match f {
                    // Full: the other leg's encoder is behind; the frame is late anyway.
                    Some(frame) => {
                        if b.to_leg.try_send(Heard { frame, shared: None }).is_ok() {
                            frames.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    None => return,
                },
                f = b.from_leg.recv() => match f {
                    Some(frame) => {
                        if a.to_leg.try_send(Heard { frame, shared: None }).is_ok() {
                            frames.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    None => return,
                },
                d = a.dtmf.recv() => if d.is_none() { return },
                d = b.dtmf.recv() => if d.is_none() { return },
            }
        }
    }
}

impl Drop for AudioBridge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Encoders of one room's shared mix, one per codec: the first leg that
/// needs a tick's shared mix in a codec encodes it, the others copy the
/// payload. All listeners on one codec thus cost one encode per tick, and
/// each leg keeps its own RTP numbering. Cheap to clone.
#[derive(Clone, Default)]
pub struct SharedEncoders {
    inner: Arc<Mutex<HashMap<CodecKind, SharedEncoder>>>,
    encodes: Arc<AtomicU64>,
}

impl std::fmt::Debug for SharedEncoders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedEncoders")
            .field("encodes", &self.encodes.load(Ordering::Relaxed))
            .finish()
    }
}

struct SharedEncoder {
    encoder: Box<dyn codec::AudioEncoder>,
    tick: u64,
    payload: Vec<u8>,
}

impl SharedEncoders {
    /// The shared mix of `tick` (`frame`) encoded in `codec`, written to
    /// `out`; encoded only by the first caller for that tick and codec.
    ///
    /// # Errors
    ///
    /// The codec failed (libopus).
    pub fn encode(&self, codec: CodecKind, tick: u64, frame: &Frame, out: &mut [u8]) -> Result<usize, CodecError> {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let entry = match map.entry(codec) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => v.insert(SharedEncoder {
                encoder: codec::encoder(codec, EncoderOptions::default())?,
                tick: 0,
                payload: Vec::with_capacity(MAX_PAYLOAD),
            }),
        };
        if entry.tick != tick || entry.payload.is_empty() {
            entry.payload.resize(MAX_PAYLOAD, 0);
            let n = entry.encoder.encode(frame, &mut entry.payload)?;
            entry.payload.truncate(n);
            entry.tick = tick;
            self.encodes.fetch_add(1, Ordering::Relaxed);
        }
        let n = entry.payload.len().min(out.len());
        out[..n].copy_from_slice(&entry.payload[..n]);
        Ok(n)
    }

    /// Encodes done so far (for tests and metrics).
    pub fn encodes(&self) -> u64 {
        self.encodes.load(Ordering::Relaxed)
    }
}

/// Why a leg's audio could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The codec could not be set up.
    #[error("codec: {0}")]
    Codec(#[from] CodecError),
    /// The relay refused.
    #[error("relay: {0}")]
    Relay(String),
}

/// Queues what the relay's worker hands over; never blocks it.
struct ChannelSink {
    packets: Arc<PacketRing>,
    /// Where STUN and DTLS go, for legs that do ICE and DTLS-SRTP
    /// themselves; `None`: not taken (the relay counts them as dropped).
    transport: Option<mpsc::Sender<TransportDatagram>>,
}

impl TapSink for ChannelSink {
    fn rtp(&mut self, packet: &[u8]) {
        // Full: the leg's task is behind; dropping is what a late packet
        // would meet in the jitter buffer anyway.
        self.packets.push(packet);
    }

    fn stun(&mut self, src: SocketAddr, packet: &[u8]) -> bool {
        match &self.transport {
            // Full: the session is behind; the browser retransmits.
            Some(t) => t.try_send(TransportDatagram::Stun(src, packet.to_vec())).is_ok(),
            None => false,
        }
    }

    fn dtls(&mut self, src: SocketAddr, packet: &[u8]) -> bool {
        match &self.transport {
            Some(t) => t.try_send(TransportDatagram::Dtls(src, packet.to_vec())).is_ok(),
            None => false,
        }
    }
}

/// Packets from the relay's worker thread to a leg's task, in slots
/// allocated once: the worker copies a packet in and wakes the task, and
/// allocates nothing per packet (the relay's packet path stays free of
/// allocation with legs tapped).
struct PacketRing {
    state: Mutex<RingState>,
    ready: tokio::sync::Notify,
}

struct RingState {
    slots: Vec<u8>,
    lens: [usize; PACKET_QUEUE],
    head: usize,
    len: usize,
}

impl PacketRing {
    fn new() -> Self {
        Self {
            state: Mutex::new(RingState {
                slots: vec![0; RING_SLOT * PACKET_QUEUE],
                lens: [0; PACKET_QUEUE],
                head: 0,
                len: 0,
            }),
            ready: tokio::sync::Notify::new(),
        }
    }

    /// Queues a copy of `packet`; false (dropped) when full or too large.
    fn push(&self, packet: &[u8]) -> bool {
        if packet.len() > RING_SLOT {
            return false;
        }
        {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.len == PACKET_QUEUE {
                return false;
            }
            let slot = (st.head + st.len) % PACKET_QUEUE;
            st.slots[slot * RING_SLOT..slot * RING_SLOT + packet.len()].copy_from_slice(packet);
            st.lens[slot] = packet.len();
            st.len += 1;
        }
        self.ready.notify_one();
        true
    }

    /// Takes the oldest packet into `out` (at least [`RING_SLOT`] long) and
    /// returns its length.
    fn pop_into(&self, out: &mut [u8]) -> Option<usize> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.len == 0 {
            return None;
        }
        let slot = st.head;
        let n = st.lens[slot].min(out.len());
        out[..n].copy_from_slice(&st.slots[slot * RING_SLOT..slot * RING_SLOT + n]);
        st.head = (st.head + 1) % PACKET_QUEUE;
        st.len -= 1;
        Some(n)
    }
}

/// Numbers outgoing frames into RTP packets: one SSRC, sequence numbers
/// without gaps, timestamps that follow real time across pauses, the
/// marker bit on the first packet of each talk spurt (RFC 3551 §4.1).
#[derive(Debug)]
struct Packetizer {
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    step: u32,
    payload_type: u8,
    last: Option<Instant>,
}

impl Packetizer {
    fn new(step: u32, payload_type: u8) -> Self {
        Self {
            ssrc: rand::random::<u32>() | 1,
            seq: rand::random(),
            timestamp: rand::random(),
            step,
            payload_type,
            last: None,
        }
    }

    /// The RTP header for a frame sent at `now`.
    fn header(&mut self, now: Instant) -> [u8; 12] {
        let marker = match self.last {
            None => true,
            Some(last) => {
                let gap = now.saturating_duration_since(last);
                // Frames come every 20 ms; a longer pause is a new spurt
                // and the timestamp jumps by the time that passed.
                if gap > Duration::from_millis(30) {
                    let frames = (gap.as_millis() as u32 + 10) / 20;
                    self.timestamp = self.timestamp.wrapping_add(self.step.wrapping_mul(frames.max(1)));
                    true
                } else {
                    self.timestamp = self.timestamp.wrapping_add(self.step);
                    false
                }
            }
        };
        self.last = Some(now);
        self.seq = self.seq.wrapping_add(1);
        let mut h = [0u8; 12];
        h[0] = 0x80;
        h[1] = self.payload_type | if marker { 0x80 } else { 0 };
        h[2..4].copy_from_slice(&self.seq.to_be_bytes());
        h[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        h[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        h
    }
}

struct LegAudio {
    relay: Relay,
    endpoint: EndpointId,
    format: AudioFormat,
    inbound: InboundAudio,
    encoder: Box<dyn codec::AudioEncoder>,
    out: Packetizer,
    last_packet: Option<Instant>,
    frame: Frame,
}

impl LegAudio {
    async fn run(
        mut self,
        packets: Arc<PacketRing>,
        from_leg: mpsc::Sender<Frame>,
        mut to_leg: mpsc::Receiver<Heard>,
        dtmf: mpsc::Sender<char>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut payload = vec![0u8; MAX_PAYLOAD];
        let mut packet = vec![0u8; RING_SLOT];
        loop {
            tokio::select! {
                _ = packets.ready.notified() => {
                    while let Some(n) = packets.pop_into(&mut packet) {
                        self.on_packet(&packet[..n]);
                    }
                }
                f = to_leg.recv() => match f {
                    Some(heard) => self.send(&heard, &mut payload),
                    None => return,
                },
                _ = tick.tick() => {
                    let now = Instant::now();
                    let sending = self.last_packet.is_some_and(|t| now.duration_since(t) < SENDING_GRACE);
                    if sending {
                        let state = self.inbound.pull(now, &mut self.frame);
                        if state != FrameState::Silence || self.last_packet.is_some() {
                            // A full room queue drops the frame: the room is behind.
                            let _ = from_leg.try_send(self.frame);
                        }
                    }
                    while let Some(ev) = self.inbound.poll_dtmf() {
                        let _ = dtmf.try_send(ev.digit);
                    }
                }
            }
        }
    }

    fn on_packet(&mut self, p: &[u8]) {
        let Ok(h) = relay::rtp::parse_rtp(p) else { return };
        let Some(payload) = p.get(h.payload_offset..h.payload_offset + h.payload_len) else {
            return;
        };
        let now = Instant::now();
        self.last_packet = Some(now);
        self.inbound
            .push_rtp(h.sequence, h.timestamp, h.marker, h.payload_type, payload, now);
    }

    fn send(&mut self, heard: &Heard, payload: &mut [u8]) {
        let encoded = match &heard.shared {
            Some(mix) => mix.encoders.encode(self.format.codec, mix.tick, &heard.frame, payload),
            None => self.encoder.encode(&heard.frame, payload),
        };
        let n = match encoded {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, codec = self.format.codec.sdp_name(), "encoding failed");
                return;
            }
        };
        let header = self.out.header(Instant::now());
        let mut packet = Vec::with_capacity(12 + n);
        packet.extend_from_slice(&header);
        packet.extend_from_slice(&payload[..n]);
        let _ = self.relay.send_rtp(self.endpoint, packet);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn packetizer_numbers_frames_and_marks_talk_spurts() {
        let mut p = Packetizer::new(160, 0);
        let t0 = Instant::now();
        let h0 = p.header(t0);
        assert_eq!(h0[1], 0x80, "first packet carries the marker");
        let h1 = p.header(t0 + Duration::from_millis(20));
        assert_eq!(h1[1], 0);
        let seq = |h: &[u8; 12]| u16::from_be_bytes([h[2], h[3]]);
        let ts = |h: &[u8; 12]| u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        assert_eq!(seq(&h1), seq(&h0).wrapping_add(1));
        assert_eq!(ts(&h1), ts(&h0).wrapping_add(160));
        // One second of silence: the timestamp follows the clock, marker set.
        let h2 = p.header(t0 + Duration::from_millis(1020));
        assert_eq!(h2[1], 0x80);
        assert_eq!(seq(&h2), seq(&h1).wrapping_add(1), "no sequence gap for a pause");
        assert_eq!(ts(&h2), ts(&h1).wrapping_add(160 * 50));
        assert_eq!(&h2[8..12], &h0[8..12], "one SSRC");
    }

    #[test]
    fn listeners_on_one_codec_share_one_encode_per_tick() {
        let enc = SharedEncoders::default();
        let frame: Frame = std::array::from_fn(|i| ((i as f32 * 0.1).sin() * 8000.0) as i16);
        let mut a = [0u8; MAX_PAYLOAD];
        let mut b = [0u8; MAX_PAYLOAD];
        let opus = CodecKind::Opus { channels: 1 };
        // Three listeners on Opus and two on PCMU hear tick 1, then tick 2.
        for tick in 1..=2 {
            let na = enc.encode(opus, tick, &frame, &mut a).unwrap();
            let nb = enc.encode(opus, tick, &frame, &mut b).unwrap();
            assert_eq!(&a[..na], &b[..nb], "the same payload for every Opus listener");
            enc.encode(opus, tick, &frame, &mut b).unwrap();
            let nu = enc.encode(CodecKind::Pcmu, tick, &frame, &mut a).unwrap();
            assert_eq!(nu, 160);
            enc.encode(CodecKind::Pcmu, tick, &frame, &mut a).unwrap();
        }
        assert_eq!(enc.encodes(), 4, "one encode per codec per tick, not one per listener");
    }

    #[test]
    fn the_packet_ring_keeps_order_drops_when_full_and_refuses_oversized_packets() {
        let ring = PacketRing::new();
        for i in 0..PACKET_QUEUE {
            assert!(ring.push(&[i as u8; 3]));
        }
        assert!(!ring.push(&[9; 3]), "full: dropped");
        assert!(!ring.push(&vec![0; RING_SLOT + 1]), "too large: dropped");
        let mut out = vec![0u8; RING_SLOT];
        for i in 0..PACKET_QUEUE {
            assert_eq!(ring.pop_into(&mut out), Some(3));
            assert_eq!(&out[..3], &[i as u8; 3], "oldest first");
        }
        assert_eq!(ring.pop_into(&mut out), None);
        assert!(ring.push(&[1, 2]), "room again after draining");
    }

    /// Power of `hz` in 48 kHz `x` (Goertzel), per sample.
    fn power_at(x: &[i16], hz: f64) -> f64 {
        let w = 2.0 * std::f64::consts::PI * hz / 48_000.0;
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &v in x {
            let s0 = f64::from(v) + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        (s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2) / x.len().max(1) as f64
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bridge_carries_a_tone_from_a_pcmu_leg_to_a_g722_leg() {
        use relay::{LatchMode, PeerConfig, RelayConfig};
        // Two phones on loopback: A speaks PCMU to endpoint a, B hears G.722 from endpoint b.
        let base = 47_000 + (std::process::id() % 500) as u16 * 8;
        let relay = Relay::start(RelayConfig {
            bind: std::net::IpAddr::from([127, 0, 0, 1]),
            port_min: base,
            port_max: base + 7,
            workers: 1,
            batch: 8,
            raw_send: true,
        })
        .unwrap();
        let phone_a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let phone_b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        phone_b.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let ea = relay.create_endpoint(1, true).unwrap();
        let eb = relay.create_endpoint(1, true).unwrap();
        for (ep, phone, rate) in [(ea.id, &phone_a, 8000), (eb.id, &phone_b, 8000)] {
            let peer = PeerConfig {
                peer: Some(phone.local_addr().unwrap()),
                peer_rtcp: None,
                latch: LatchMode::Once,
                srtp_in: None,
                srtp_out: None,
                clock_rate: rate,
                rtcp_mux: true,
            };
            relay.configure(ep, &peer).unwrap();
        }
        let format = |codec, payload_type| AudioFormat {
            codec,
            payload_type,
            telephone_event: None,
            telephone_event_clock: 8000,
        };
        let a = AudioPort::start(&relay, ea.id, format(CodecKind::Pcmu, 0)).unwrap();
        let b = AudioPort::start(&relay, eb.id, format(CodecKind::G722, 9)).unwrap();
        let bridge = AudioBridge::start(a, b);
        // 1.5 s of a 700 Hz tone from A, in real time, in PCMU.
        let sender = {
            let phone_a = phone_a.try_clone().unwrap();
            let to = std::net::SocketAddr::from(([127, 0, 0, 1], ea.rtp_port));
            std::thread::spawn(move || {
                let mut enc = codec::encoder(CodecKind::Pcmu, EncoderOptions::default()).unwrap();
                let mut payload = [0u8; 1500];
                for n in 0u32..75 {
                    let frame: Frame = std::array::from_fn(|i| {
                        let t = f64::from(n * 960 + i as u32) / 48_000.0;
                        (f64::sin(2.0 * std::f64::consts::PI * 700.0 * t) * 8000.0) as i16
                    });
                    let len = enc.encode(&frame, &mut payload).unwrap();
                    let mut packet = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
                    packet[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                    packet[4..8].copy_from_slice(&(n * 160).to_be_bytes());
                    packet.extend_from_slice(&payload[..len]);
                    phone_a.send_to(&packet, to).unwrap();
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        // B decodes what it gets as G.722 (payload type 9).
        let receiver = std::thread::spawn(move || {
            let mut dec = codec::decoder(CodecKind::G722).unwrap();
            let mut heard = Vec::new();
            let mut buf = [0u8; 2048];
            let mut pcm = vec![0i16; codec::MAX_PAYLOAD_SAMPLES_48K];
            let deadline = Instant::now() + Duration::from_secs(4);
            while Instant::now() < deadline {
                let Ok(n) = phone_b.recv(&mut buf) else { continue };
                let Ok(h) = relay::rtp::parse_rtp(&buf[..n]) else {
                    continue;
                };
                assert_eq!(h.payload_type, 9, "B gets G.722");
                let payload = &buf[h.payload_offset..h.payload_offset + h.payload_len];
                let k = dec.decode(payload, &mut pcm).unwrap();
                heard.extend_from_slice(&pcm[..k]);
            }
            heard
        });
        tokio::task::spawn_blocking(move || sender.join().unwrap())
            .await
            .unwrap();
        let heard = tokio::task::spawn_blocking(move || receiver.join().unwrap())
            .await
            .unwrap();
        assert!(bridge.frames() > 40, "frames passed: {}", bridge.frames());
        assert!(heard.len() > 48_000 / 2, "B heard {} samples", heard.len());
        let tone = power_at(&heard, 700.0);
        let other = power_at(&heard, 1100.0);
        assert!(
            tone > 100.0 * other.max(1.0),
            "700 Hz at {tone:.0}, 1100 Hz at {other:.0}"
        );
        drop(bridge);
        let _ = relay.remove_endpoint(ea.id);
        let _ = relay.remove_endpoint(eb.id);
    }

    #[test]
    fn sdp_names_map_to_mixer_codecs() {
        assert_eq!(AudioFormat::codec_for("PCMU", 8000, 1), Some(CodecKind::Pcmu));
        assert_eq!(AudioFormat::codec_for("pcma", 8000, 1), Some(CodecKind::Pcma));
        assert_eq!(AudioFormat::codec_for("G722", 8000, 1), Some(CodecKind::G722));
        assert_eq!(
            AudioFormat::codec_for("opus", 48_000, 2),
            Some(CodecKind::Opus { channels: 2 })
        );
        assert_eq!(AudioFormat::codec_for("opus", 16_000, 1), None);
        assert_eq!(AudioFormat::codec_for("G729", 8000, 1), None);
    }
}
