//! The shard map is even-handed over realistic DUIDs (issue 3, item 2).
//!
//! 1. One million DUIDs the way a deployment sees them: a third DUID-LL (type 3, hardware
//!    type 1) with consecutive MACs, a third DUID-LLT (type 1) with consecutive MACs and one
//!    shared time, a third DUID-EN (type 2) with one enterprise number and sequential
//!    identifiers. Consecutive MACs differ in their last octets only, the worst case for a
//!    weak hash reduced with a modulo.
//! 2. For 2, 4, 8, 16, 32 and 64 shards, every shard's count is within ±5% of even.
//! 3. `shard_of` is pure: the same DUID maps to the same shard every time.

use lqd::store::shard_of;

const DUIDS: u32 = 1_000_000;
const SHARD_COUNTS: [u32; 6] = [2, 4, 8, 16, 32, 64];

/// MAC `n` of a vendor block (OUI 00:16:3e).
fn mac(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [0x00, 0x16, 0x3e, b[1], b[2], b[3]]
}

/// DUID `n` of the mix: LL, LLT and EN in turn. Returns the length used in `out`.
fn realistic_duid(n: u32, out: &mut [u8; 18]) -> usize {
    let serial = n / 3;
    match n % 3 {
        0 => {
            // DUID-LL: type 3, hardware type 1 (Ethernet), MAC.
            out[..4].copy_from_slice(&[0, 3, 0, 1]);
            out[4..10].copy_from_slice(&mac(serial));
            10
        }
        1 => {
            // DUID-LLT: type 1, hardware type 1, one time for every client, MAC.
            out[..4].copy_from_slice(&[0, 1, 0, 1]);
            out[4..8].copy_from_slice(&0x2f6b_1a00u32.to_be_bytes());
            out[8..14].copy_from_slice(&mac(serial));
            14
        }
        _ => {
            // DUID-EN: type 2, enterprise number 9 (Cisco), 8-octet sequential identifier.
            out[..2].copy_from_slice(&[0, 2]);
            out[2..6].copy_from_slice(&9u32.to_be_bytes());
            out[6..14].copy_from_slice(&u64::from(serial).to_be_bytes());
            14
        }
    }
}

/// Per shard count, the number of DUIDs each shard received.
fn counts_for(range: std::ops::Range<u32>) -> Vec<Vec<u64>> {
    let mut counts: Vec<Vec<u64>> = SHARD_COUNTS.iter().map(|&n| vec![0; n as usize]).collect();
    let mut buf = [0u8; 18];
    for n in range {
        let len = realistic_duid(n, &mut buf);
        for (i, &shards) in SHARD_COUNTS.iter().enumerate() {
            let shard = shard_of(&buf[..len], shards);
            assert!(shard < shards, "shard {shard} out of {shards}");
            counts[i][shard as usize] += 1;
        }
    }
    counts
}

#[test]
fn shards_are_within_five_percent_of_even() {
    // Two halves on two threads keep the debug build within a few seconds.
    let (low, high) = std::thread::scope(|s| {
        let low = s.spawn(|| counts_for(0..DUIDS / 2));
        let high = counts_for(DUIDS / 2..DUIDS);
        (low.join().expect("counting thread"), high)
    });
    for (i, &shards) in SHARD_COUNTS.iter().enumerate() {
        let even = f64::from(DUIDS) / f64::from(shards);
        let total: u64 = low[i].iter().zip(&high[i]).map(|(a, b)| a + b).sum();
        assert_eq!(total, u64::from(DUIDS));
        for shard in 0..shards as usize {
            let count = low[i][shard] + high[i][shard];
            let deviation = (count as f64 - even) / even;
            assert!(
                deviation.abs() <= 0.05,
                "{shards} shards: shard {shard} holds {count}, {:+.2}% from even {even}",
                deviation * 100.0
            );
        }
    }
}

#[test]
fn shard_of_depends_on_the_duid_octets_only() {
    let mut buf = [0u8; 18];
    for n in 0..3_000 {
        let len = realistic_duid(n, &mut buf);
        let first = shard_of(&buf[..len], 16);
        // A copy elsewhere in memory (another alignment) maps to the same shard.
        let mut moved = vec![0xa5u8; len + 1];
        moved[1..].copy_from_slice(&buf[..len]);
        assert_eq!(shard_of(&moved[1..], 16), first);
        assert_eq!(shard_of(&buf[..len], 1), 0);
    }
}

#[test]
#[should_panic]
fn zero_shards_is_a_bug() {
    let _ = shard_of(&[0, 3, 0, 1, 1, 2, 3, 4, 5, 6], 0);
}
