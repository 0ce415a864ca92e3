//! Single-threaded push/pop loops for instruction counting under
//! `valgrind --tool=callgrind` (stable on a noisy machine):
//! `valgrind --tool=callgrind target/release/instr-count shmlane|bytes8|bytes8zc|mpmc|arrayqueue|chanpoll|rtrb|chunk|rtrbchunk [N]`.

use std::hint::black_box;

/// Both sides of a 64 KiB byte ring in an anonymous mapping (`None` if it cannot be made).
fn bytes_pair() -> Option<(shm_queue::bytes::Producer, shm_queue::bytes::Consumer)> {
    let region =
        shm_region::Region::anonymous(shm_queue::bytes::Ring::required_bytes(1 << 16).ok()?)
            .ok()?;
    shm_queue::bytes::Ring::create(region, 1 << 16, 1024)
        .ok()?
        .split()
        .ok()
}

/// Both sides of a typed SPSC ring of 4096 `u64`s in an anonymous mapping (`None` if it
/// cannot be made).
fn spsc_pair() -> Option<(
    shm_queue::spsc::Producer<u64>,
    shm_queue::spsc::Consumer<u64>,
)> {
    let region =
        shm_region::Region::anonymous(shm_queue::spsc::Ring::<u64>::required_bytes(4096).ok()?)
            .ok()?;
    shm_queue::spsc::Ring::<u64>::create(region, 4096)
        .ok()?
        .split()
        .ok()
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let n: u64 = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let mut sum = 0u64;
    match which.as_str() {
        "shmlane" => {
            let Some((mut tx, mut rx)) = spsc_pair() else {
                return;
            };
            for i in 0..n {
                let _ = tx.try_push(black_box(i));
                if let Ok(v) = rx.try_pop() {
                    sum += v;
                }
            }
        }
        "bytes8" => {
            let Some((mut tx, mut rx)) = bytes_pair() else {
                return;
            };
            let mut buf = [0u8; 64];
            for i in 0..n {
                let _ = tx.try_push(&black_box(i).to_le_bytes());
                if let Ok(k) = rx.try_pop(&mut buf) {
                    sum += k as u64 + u64::from(buf[0]);
                }
            }
        }
        "bytes8zc" => {
            let Some((mut tx, mut rx)) = bytes_pair() else {
                return;
            };
            let mut first = [0u8; 8];
            for i in 0..n {
                if let Ok(mut c) = tx.claim(8) {
                    let _ = c.write_at(0, &black_box(i).to_le_bytes());
                    c.commit();
                }
                if let Ok(g) = rx.read() {
                    let _ = g.read_at(0, &mut first);
                    sum += g.len() as u64 + u64::from(first[0]);
                }
            }
        }
        "mpmc" => {
            let ring = shm_region::Region::anonymous(
                shm_queue::mpmc::Ring::<u64>::required_bytes(4096).unwrap_or(1 << 20),
            )
            .ok()
            .and_then(|r| shm_queue::mpmc::Ring::<u64>::create(r, 4096).ok());
            let Some(ring) = ring else { return };
            let (Ok(mut tx), Ok(mut rx)) = (ring.producer(), ring.consumer()) else {
                return;
            };
            for i in 0..n {
                let _ = tx.try_push(black_box(i));
                if let Ok(v) = rx.try_pop() {
                    sum += v;
                }
            }
        }
        "arrayqueue" => {
            let q = crossbeam_queue::ArrayQueue::<u64>::new(4096);
            for i in 0..n {
                let _ = q.push(black_box(i));
                if let Some(v) = q.pop() {
                    sum += v;
                }
            }
        }
        "chanpoll" => {
            // A polling receiver on an empty channel: the cost of "try again".
            let name = format!("instr-count-{}", std::process::id());
            let Ok(mut tx) = shm_bridge::ChannelOptions::new()
                .capacity(64)
                .create::<u64>(&name)
            else {
                return;
            };
            let Ok(mut rx) = shm_bridge::ChannelOptions::new().connect::<u64>(&name) else {
                return;
            };
            for _ in 0..n {
                if let Err(e) = rx.try_recv() {
                    sum += u64::from(e.is_retryable());
                }
            }
            let _ = tx.try_send(1);
        }
        "chunk" => {
            // Chunks of 256 written with `fill_from_iter` and read with the chunk iterator,
            // as `rings::spsc_chunked` does: N counts elements.
            let Some((mut tx, mut rx)) = spsc_pair() else {
                return;
            };
            let mut next = 0u64;
            while next < n {
                if let Ok(mut c) = tx.write_chunk_up_to(256) {
                    let start = black_box(next);
                    next += c.fill_from_iter(start..start + c.len() as u64) as u64;
                    c.commit_all();
                }
                if let Ok(c) = rx.read_chunk_up_to(256) {
                    for v in &c {
                        sum = sum.wrapping_add(v);
                    }
                    c.commit_all();
                }
            }
        }
        "rtrbchunk" => {
            // The same with rtrb's chunks, as `inproc::rtrb_chunked` does.
            let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(4096);
            let mut next = 0u64;
            while next < n {
                if let Ok(w) = tx.write_chunk_uninit(256) {
                    let start = black_box(next);
                    next += w.fill_from_iter(start..start + 256) as u64;
                }
                let avail = rx.slots().min(256);
                if let Ok(r) = rx.read_chunk(avail) {
                    let (a, b) = r.as_slices();
                    for v in a.iter().chain(b) {
                        sum = sum.wrapping_add(*v);
                    }
                    r.commit_all();
                }
            }
        }
        "rtrb" => {
            let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(4096);
            for i in 0..n {
                let _ = tx.push(black_box(i));
                if let Ok(v) = rx.pop() {
                    sum += v;
                }
            }
        }
        _ => eprintln!(
            "usage: instr-count shmlane|bytes8|bytes8zc|mpmc|arrayqueue|chanpoll|rtrb|chunk|rtrbchunk [N]"
        ),
    }
    println!("{sum}");
}
