#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| confgate_h323::fuzzing::h245_session(data));
