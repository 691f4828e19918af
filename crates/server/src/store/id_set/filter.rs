//! A blocked Bloom filter over keys that are already uniform hashes (xxh3-128 of the
//! tenant and event id), so their own bits choose the block and the bits: no rehashing.
//! About 10 bits per key; each probe touches one 64-byte block (one cache line).

/// Bits of memory per key.
const BITS_PER_KEY: usize = 10;
/// Bits set per key, each chosen by 9 bits of the key's low half.
const PROBES: u32 = 6;

#[derive(Debug, Clone)]
pub struct Filter {
    blocks: Vec<[u64; 8]>,
}

impl Filter {
    pub fn with_capacity(keys: usize) -> Self {
        let blocks = (keys * BITS_PER_KEY).div_ceil(512).max(1);
        Self { blocks: vec![[0; 8]; blocks] }
    }

    pub fn from_blocks(blocks: Vec<[u64; 8]>) -> Self {
        assert!(!blocks.is_empty(), "a filter has at least one block");
        Self { blocks }
    }

    pub fn blocks(&self) -> &[[u64; 8]] {
        &self.blocks
    }

    fn block(&self, key: u128) -> usize {
        // Lemire's fast range over the high 64 bits.
        (((key >> 64) as u64 as u128 * self.blocks.len() as u128) >> 64) as usize
    }

    pub fn insert(&mut self, key: u128) {
        let b = self.block(key);
        let block = &mut self.blocks[b];
        for i in 0..PROBES {
            let bit = (key as u64 >> (i * 9)) & 511;
            block[(bit >> 6) as usize] |= 1 << (bit & 63);
        }
    }

    /// False: the key was never inserted. True: it may have been.
    pub fn may_contain(&self, key: u128) -> bool {
        let block = &self.blocks[self.block(key)];
        (0..PROBES).all(|i| {
            let bit = (key as u64 >> (i * 9)) & 511;
            block[(bit >> 6) as usize] & (1 << (bit & 63)) != 0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Filter;

    fn key(i: u64) -> u128 {
        xxhash_rust::xxh3::xxh3_128(&i.to_le_bytes())
    }

    #[test]
    fn inserted_keys_are_found_and_few_others_are() {
        let n = 100_000;
        let mut f = Filter::with_capacity(n);
        (0..n as u64).for_each(|i| f.insert(key(i)));
        assert!((0..n as u64).all(|i| f.may_contain(key(i))), "no false negatives");
        let false_hits = (n as u64..2 * n as u64).filter(|&i| f.may_contain(key(i))).count();
        // 10 bits per key, 6 probes in one block: about 1 %; 3 % leaves room for chance.
        assert!(false_hits < n * 3 / 100, "{false_hits} false positives of {n}");
    }
}
