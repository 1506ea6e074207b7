//! What a scheduled ring costs: deriving the ring of a time (once per change: a period's key
//! joins or a key retires, a few times per lifetime) and the check every request makes.
//! `cargo run --release --example schedule_cost`.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use sealed_session::{Key, KeyId, KeyRing, RotationPolicy, Schedule, SharedKeyRing};

fn main() {
    let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let schedule =
        Schedule::new(Key::generate(), KeyId(0x8000_0000), epoch, RotationPolicy::default())
            .expect("valid");
    let mut ring = KeyRing::new();
    ring.set_schedule(schedule, epoch).expect("no collision");
    // One period in, a day before the next key's lead ends: two keys in service, one pending.
    let day = Duration::from_secs(86_400);
    let rounds = 2_000u32;
    let start = Instant::now();
    for i in 0..rounds {
        // A different period each round, so no derived key is reused.
        let at = epoch + 90 * day * (i % 500) + 89 * day;
        black_box(ring.at(black_box(at)));
    }
    let derive = start.elapsed() / rounds;
    let shared = SharedKeyRing::new(ring.at(epoch + 89 * day));
    let now = epoch + 89 * day;
    let rounds = 1_000_000u32;
    let start = Instant::now();
    for _ in 0..rounds {
        black_box(shared.snapshot_at(black_box(now)));
    }
    let check = start.elapsed() / rounds;
    let keys = ring.at(epoch + 89 * day).len();
    println!("deriving the ring of a time ({keys} keys, none reused): {derive:?}");
    println!("snapshot_at on a fresh ring (the request path's check): {check:?}");
}
