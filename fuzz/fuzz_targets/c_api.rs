#![no_main]
use libfuzzer_sys::fuzz_target;
fuzz_target!(|data: &[u8]| { let _ = data; let _ = asrl_c::asrl_version(); });
