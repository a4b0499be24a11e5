//! Hostile input: mutated headers never make the reader panic.

use super::*;

#[test]
fn mutated_headers_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut blob: Vec<u8> = KFDEMO.to_vec();
    let mut parsed: usize = 0;
    for _ in 0..5_000 {
        let flips: usize = 1 + rng.below(4);
        let mut saved: Vec<(usize, u8)> = Vec::new();
        for _ in 0..flips {
            // Half of the flips hit il, dl or the index, where every byte matters.
            let at: usize = if rng.below(2) == 0 {
                rng.below(KFDEMO_DATA)
            } else {
                rng.below(blob.len())
            };
            saved.push((at, blob[at]));
            blob[at] = rng.next_u64() as u8;
        }
        if parse_header(&blob, 1_000).is_ok() {
            parsed += 1;
        }
        let cut: usize = rng.below(blob.len() + 1);
        let _ = parse_header(&blob[..cut], 1_000);
        for (at, byte) in saved.into_iter().rev() {
            blob[at] = byte;
        }
    }
    assert_eq!(blob, KFDEMO);
    // Many bytes (descriptions, signatures) do not affect validity.
    assert!(parsed > 0);
}
