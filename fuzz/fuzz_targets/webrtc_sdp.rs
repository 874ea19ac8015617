#![no_main]

use libfuzzer_sys::fuzz_target;

// A browser's offer, as it reaches us in the web client's signaling and in
// the INVITE of a SIP softphone over WebSocket: parsed and answered.
fuzz_target!(|data: &[u8]| confgate_webrtc::fuzzing::sdp(data));
