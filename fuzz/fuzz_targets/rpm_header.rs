//! One rpm header blob, as rpmdb.sqlite's Packages table holds it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kubefim_agent::fuzzing::rpm_header(data));
