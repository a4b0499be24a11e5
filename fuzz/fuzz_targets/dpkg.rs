//! dpkg's status database, an update file applied over it, an md5sums or list file, and an
//! update-alternatives group file.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kubefim_agent::fuzzing::dpkg(data));
