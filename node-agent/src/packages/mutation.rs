//! Deterministic random edits for the parsers' hostile-input tests: a seeded xorshift
//! generator and a byte-level mutator. Test-only; the sequence for a seed must never change,
//! since tests state what their fixed seeds lead to.

/// Marsaglia's xorshift64 (13, 7, 17): the same numbers for the same seed on every machine.
/// The seed must not be 0, which would only ever give 0.
pub(crate) struct XorShift(pub u64);

impl XorShift {
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x: u64 = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// 0 when `n` is 0, else a number below `n`.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// One random edit: overwrite, insert, delete, duplicate or truncate. Written and inserted
/// bytes are drawn from `interesting` (not empty): the ones the format gives a meaning to.
pub(crate) fn mutate(bytes: &mut Vec<u8>, rng: &mut XorShift, interesting: &[u8]) {
    let pick = |rng: &mut XorShift| interesting[rng.below(interesting.len())];
    match rng.below(5) {
        0 if !bytes.is_empty() => {
            let at = rng.below(bytes.len());
            bytes[at] = pick(rng);
        }
        1 => {
            let at = rng.below(bytes.len() + 1);
            bytes.insert(at, pick(rng));
        }
        2 => {
            let start = rng.below(bytes.len());
            let end = (start + 1 + rng.below(16)).min(bytes.len());
            bytes.drain(start..end);
        }
        3 => {
            let start = rng.below(bytes.len());
            let end = (start + 1 + rng.below(64)).min(bytes.len());
            let chunk: Vec<u8> = bytes[start..end].to_vec();
            let at = rng.below(bytes.len() + 1);
            let tail: Vec<u8> = bytes.split_off(at);
            bytes.extend_from_slice(&chunk);
            bytes.extend_from_slice(&tail);
        }
        _ => {
            let len = rng.below(bytes.len() + 1);
            bytes.truncate(len);
        }
    }
}
