//! The conference media engine for RTP legs: jitter buffer and decoder per
//! incoming stream, N−1 mixing, and encoding once per distinct output.
//!
//! Every 20 ms [`ConferenceMixer::tick`]:
//! 1. pulls one 48 kHz frame from each leg's [`InboundAudio`] (decoded
//!    once, concealed on loss);
//! 2. mixes the loudest speakers ([`Mixer`]): each speaker gets the mix
//!    without its own voice, everyone else shares one mix;
//! 3. encodes each speaker's own mix with that leg's encoder, and the
//!    shared mix once per codec used by listeners (all PCMU listeners share
//!    one encoded payload, all Opus listeners another).
//!
//! The caller (the room) ticks only while media arrives, so an idle room
//! costs nothing. A listener that starts speaking moves from the shared
//! encoder to its own; the switch is a new encoder stream for that leg,
//! which receivers handle as they handle any talk-spurt start.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use crate::codec::{self, AudioEncoder, CodecError, CodecKind, EncoderOptions};
use crate::dtmf::DtmfEvent;
use crate::inbound::{InboundAudio, InboundConfig, RtpOutcome};
use crate::{Frame, InputId, Mixer, MixerConfig, FRAME_SAMPLES};

/// Largest encoded payload of one 20 ms frame.
pub const MAX_PAYLOAD: usize = 1500;

/// How one leg sends and receives audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegCodec {
    /// The codec, both directions.
    pub kind: CodecKind,
    /// RTP payload type of the codec on this leg.
    pub payload_type: u8,
    /// RTP payload type of telephone events (RFC 4733), if negotiated.
    pub telephone_event_payload_type: Option<u8>,
}

struct Leg {
    inbound: InboundAudio,
    codec: LegCodec,
    encoder: Box<dyn AudioEncoder>,
    payload: Vec<u8>,
    payload_len: usize,
    uses_shared: bool,
    frame: Frame,
}

struct SharedEncoder {
    encoder: Box<dyn AudioEncoder>,
    payload: Vec<u8>,
    len: usize,
    used: bool,
}

/// One conference's audio: legs in, mixed payloads out.
pub struct ConferenceMixer {
    mixer: Mixer,
    legs: BTreeMap<InputId, Leg>,
    shared: HashMap<CodecKind, SharedEncoder>,
    options: EncoderOptions,
}

impl std::fmt::Debug for ConferenceMixer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConferenceMixer")
            .field("legs", &self.legs.len())
            .finish()
    }
}

impl ConferenceMixer {
    /// An empty conference.
    pub fn new(config: MixerConfig, options: EncoderOptions) -> Self {
        Self {
            mixer: Mixer::new(config),
            legs: BTreeMap::new(),
            shared: HashMap::new(),
            options,
        }
    }

    /// Adds a leg (creating its decoder and encoder).
    pub fn add_leg(&mut self, id: InputId, codec: LegCodec) -> Result<(), CodecError> {
        let mut cfg = InboundConfig::new(codec.payload_type);
        cfg.telephone_event_payload_type = codec.telephone_event_payload_type;
        let inbound = InboundAudio::new(cfg, codec::decoder(codec.kind)?);
        let encoder = codec::encoder(codec.kind, self.options)?;
        if !self.shared.contains_key(&codec.kind) {
            let enc = codec::encoder(codec.kind, self.options)?;
            self.shared.insert(
                codec.kind,
                SharedEncoder {
                    encoder: enc,
                    payload: vec![0; MAX_PAYLOAD],
                    len: 0,
                    used: false,
                },
            );
        }
        self.mixer.add_input(id);
        self.legs.insert(
            id,
            Leg {
                inbound,
                codec,
                encoder,
                payload: vec![0; MAX_PAYLOAD],
                payload_len: 0,
                uses_shared: true,
                frame: [0; FRAME_SAMPLES],
            },
        );
        Ok(())
    }

    /// Removes a leg.
    pub fn remove_leg(&mut self, id: InputId) {
        if let Some(leg) = self.legs.remove(&id) {
            self.mixer.remove_input(id);
            if !self.legs.values().any(|l| l.codec.kind == leg.codec.kind) {
                self.shared.remove(&leg.codec.kind);
            }
        }
    }

    /// Mutes or unmutes a leg's contribution.
    pub fn set_muted(&mut self, id: InputId, muted: bool) {
        self.mixer.set_muted(id, muted);
    }

    /// Legs in the conference.
    pub fn leg_count(&self) -> usize {
        self.legs.len()
    }

    /// Takes one received RTP packet of leg `id`.
    #[allow(clippy::too_many_arguments)]
    pub fn push_rtp(
        &mut self,
        id: InputId,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload_type: u8,
        payload: &[u8],
        arrival: Instant,
    ) -> Option<RtpOutcome> {
        let leg = self.legs.get_mut(&id)?;
        Some(
            leg.inbound
                .push_rtp(seq, timestamp, marker, payload_type, payload, arrival),
        )
    }

    /// The next key press leg `id` sent (RFC 4733), if any.
    pub fn poll_dtmf(&mut self, id: InputId) -> Option<DtmfEvent> {
        self.legs.get_mut(&id)?.inbound.poll_dtmf()
    }

    /// One 20 ms step. Returns whether any leg had audio (false: the room
    /// may stop ticking until media arrives again).
    pub fn tick(&mut self, now: Instant) -> Result<bool, CodecError> {
        let mut any = false;
        for (id, leg) in self.legs.iter_mut() {
            let state = leg.inbound.pull(now, &mut leg.frame);
            if state != crate::inbound::FrameState::Silence {
                any = true;
            }
            self.mixer.push_frame(*id, &leg.frame);
        }
        self.mixer.tick();
        for s in self.shared.values_mut() {
            s.used = false;
        }
        for (id, leg) in self.legs.iter_mut() {
            leg.uses_shared = self.mixer.hears_shared_mix(*id);
            if leg.uses_shared {
                if let Some(s) = self.shared.get_mut(&leg.codec.kind) {
                    s.used = true;
                }
            } else if let Some(out) = self.mixer.output(*id) {
                leg.payload_len = leg.encoder.encode(out, &mut leg.payload)?;
            }
        }
        let shared_mix = *self.mixer.shared_mix();
        for s in self.shared.values_mut().filter(|s| s.used) {
            s.len = s.encoder.encode(&shared_mix, &mut s.payload)?;
        }
        Ok(any)
    }

    /// The payload to send to leg `id` this tick (its own N−1 mix, or the
    /// shared mix in its codec).
    pub fn payload(&self, id: InputId) -> Option<&[u8]> {
        let leg = self.legs.get(&id)?;
        if leg.uses_shared {
            let s = self.shared.get(&leg.codec.kind)?;
            Some(&s.payload[..s.len])
        } else {
            Some(&leg.payload[..leg.payload_len])
        }
    }

    /// The loudest speaker of the last tick, if any.
    pub fn active_speaker(&self) -> Option<InputId> {
        self.mixer.active_speaker()
    }

    /// How many distinct encodes the last tick made (speakers' own mixes plus
    /// one shared mix per listener codec): the cost driver.
    pub fn encodes_last_tick(&self) -> usize {
        self.legs.values().filter(|l| !l.uses_shared).count() + self.shared.values().filter(|s| s.used).count()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_signal::goertzel;
    use std::time::Duration;

    fn sine(hz: f64, n: usize, phase: &mut f64) -> Vec<i16> {
        (0..n)
            .map(|_| {
                let v = (*phase * std::f64::consts::TAU).sin() * 8000.0;
                *phase = (*phase + hz / 8000.0).fract();
                v as i16
            })
            .collect()
    }

    #[test]
    fn three_pcmu_legs_hear_each_other_through_codecs() {
        let mut m = ConferenceMixer::new(MixerConfig::default(), EncoderOptions::default());
        let pcmu = LegCodec {
            kind: CodecKind::Pcmu,
            payload_type: 0,
            telephone_event_payload_type: Some(101),
        };
        let tones = [300.0, 700.0, 1100.0];
        for i in 0..3 {
            m.add_leg(InputId(i), pcmu).unwrap();
        }
        let mut enc: Vec<_> = (0..3)
            .map(|_| codec::encoder(CodecKind::Pcmu, EncoderOptions::default()).unwrap())
            .collect();
        let mut dec: Vec<_> = (0..3).map(|_| codec::decoder(CodecKind::Pcmu).unwrap()).collect();
        let mut phases = [0.0; 3];
        let mut heard: Vec<Vec<i16>> = vec![Vec::new(); 3];
        let t0 = Instant::now();
        let mut scratch = vec![0i16; codec::MAX_PAYLOAD_SAMPLES_48K];
        for k in 0..100u32 {
            let now = t0 + Duration::from_millis(20 * u64::from(k));
            for i in 0..3 {
                // what leg i says: its tone at 8 kHz, upsampled by the codec path
                let pcm8 = sine(tones[i], 160, &mut phases[i]);
                let mut frame48 = [0i16; FRAME_SAMPLES];
                for (j, s) in pcm8.iter().enumerate() {
                    for r in 0..6 {
                        frame48[j * 6 + r] = *s;
                    }
                }
                let mut payload = [0u8; 1500];
                let n = enc[i].encode(&frame48, &mut payload).unwrap();
                m.push_rtp(InputId(i as u64), k as u16, k * 160, false, 0, &payload[..n], now)
                    .unwrap();
            }
            m.tick(now + Duration::from_millis(60)).unwrap();
            for i in 0..3 {
                let p = m.payload(InputId(i as u64)).unwrap().to_vec();
                if !p.is_empty() {
                    let n = dec[i].decode(&p, &mut scratch).unwrap();
                    heard[i].extend_from_slice(&scratch[..n]);
                }
            }
        }
        for i in 0..3 {
            let h = &heard[i][heard[i].len() / 2..];
            let p: Vec<f64> = tones.iter().map(|f| goertzel(h, 48_000.0, *f)).collect();
            for j in 0..3 {
                if j != i {
                    assert!(
                        p[j] > p[i] * 50.0,
                        "leg {i} should hear {} over its own {}: {p:?}",
                        tones[j],
                        tones[i]
                    );
                }
            }
        }
        // everyone speaks: three own encodes, no shared one
        assert_eq!(m.encodes_last_tick(), 3);
    }

    #[test]
    fn listeners_share_one_encode_per_codec() {
        let mut m = ConferenceMixer::new(MixerConfig::default(), EncoderOptions::default());
        let pcmu = LegCodec {
            kind: CodecKind::Pcmu,
            payload_type: 0,
            telephone_event_payload_type: None,
        };
        let pcma = LegCodec {
            kind: CodecKind::Pcma,
            payload_type: 8,
            telephone_event_payload_type: None,
        };
        m.add_leg(InputId(1), pcmu).unwrap();
        for i in 2..6 {
            m.add_leg(InputId(i), pcmu).unwrap();
        }
        for i in 6..9 {
            m.add_leg(InputId(i), pcma).unwrap();
        }
        let mut enc = codec::encoder(CodecKind::Pcmu, EncoderOptions::default()).unwrap();
        let t0 = Instant::now();
        let mut ph = 0.0;
        for k in 0..20u32 {
            let now = t0 + Duration::from_millis(20 * u64::from(k));
            let pcm8 = sine(500.0, 160, &mut ph);
            let mut f = [0i16; FRAME_SAMPLES];
            for (j, s) in pcm8.iter().enumerate() {
                f[j * 6..j * 6 + 6].fill(*s);
            }
            let mut payload = [0u8; 1500];
            let n = enc.encode(&f, &mut payload).unwrap();
            m.push_rtp(InputId(1), k as u16, k * 160, false, 0, &payload[..n], now)
                .unwrap();
            m.tick(now + Duration::from_millis(60)).unwrap();
        }
        // one speaker (own encode) + one shared PCMU + one shared PCMA
        assert_eq!(m.encodes_last_tick(), 3);
        assert_eq!(
            m.payload(InputId(2)).unwrap().as_ptr(),
            m.payload(InputId(5)).unwrap().as_ptr(),
            "same buffer"
        );
        assert_eq!(m.payload(InputId(6)).unwrap().len(), 160);
        assert_eq!(m.active_speaker(), Some(InputId(1)));
        m.remove_leg(InputId(1));
        assert_eq!(m.leg_count(), 7);
    }
}
