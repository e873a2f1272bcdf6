//! Ring behaviour on one thread: order, wrap-around, full and empty, hostile counters.

use super::*;
use proptest::prelude::*;
use std::vec;
use std::vec::Vec;

struct Shared {
    header: RingHeader,
    data: Vec<UnsafeCell<u8>>,
}

impl Shared {
    fn new(size: usize) -> Self {
        Shared {
            header: RingHeader::default(),
            data: (0..size).map(|_| UnsafeCell::default()).collect(),
        }
    }

    fn producer(&self) -> Producer<'_> {
        Ring::new(&self.header, &self.data).producer()
    }

    fn consumer(&self) -> Consumer<'_> {
        Ring::new(&self.header, &self.data).consumer()
    }
}

fn pop(consumer: &Consumer) -> Result<Option<Vec<u8>>, RingError> {
    let mut bytes = vec![0; 4096];
    let mut out = alloc_free::Buffer::new(&mut bytes);
    Ok(match consumer.pop(&mut out)? {
        Pop::Empty => None,
        Pop::Record { .. } => Some(out.as_slice().to_vec()),
    })
}

fn pushed(result: Result<Push, RingError>) -> bool {
    matches!(result, Ok(Push::Done { .. }))
}

#[test]
fn records_come_out_in_order_across_wrap_around() {
    let shared = Shared::new(64);
    let (producer, consumer) = (shared.producer(), shared.consumer());
    for round in 0..100u8 {
        let record = vec![round; (round % 13) as usize];
        assert!(pushed(producer.push(&record)));
        assert_eq!(pop(&consumer), Ok(Some(record)));
    }
    assert_eq!(pop(&consumer), Ok(None));
}

#[test]
fn a_full_ring_refuses_and_loses_nothing() {
    let shared = Shared::new(64);
    let (producer, consumer) = (shared.producer(), shared.consumer());
    let mut sent = 0u8;
    while pushed(producer.push(&[sent; 4])) {
        sent += 1;
    }
    assert_eq!(sent, 8, "64 bytes hold eight 8-byte records");
    for expected in 0..sent {
        assert_eq!(pop(&consumer), Ok(Some(vec![expected; 4])));
    }
    assert!(pushed(producer.push(&[9; 4])));
}

#[test]
fn records_of_every_small_length_keep_every_byte() {
    // Short records are copied as overlapping words: each byte must land in its place.
    let shared = Shared::new(256);
    let (producer, consumer) = (shared.producer(), shared.consumer());
    for len in 0..=40u8 {
        let record: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37) ^ len).collect();
        assert!(pushed(producer.push(&record)));
        assert_eq!(pop(&consumer), Ok(Some(record)));
    }
}

#[test]
fn oversized_records_are_refused() {
    let shared = Shared::new(64);
    assert_eq!(shared.producer().push(&[0; 29]), Err(RingError::TooLarge));
    assert!(pushed(shared.producer().push(&[0; 28])));
}

#[test]
fn sleeping_consumer_is_woken_once() {
    let shared = Shared::new(64);
    let (producer, consumer) = (shared.producer(), shared.consumer());
    assert_eq!(consumer.prepare_wait(), Ok(true));
    assert_eq!(
        producer.push(b"x"),
        Ok(Push::Done {
            wake_consumer: true
        })
    );
    assert_eq!(
        producer.push(b"y"),
        Ok(Push::Done {
            wake_consumer: false
        })
    );
    assert_eq!(
        consumer.prepare_wait(),
        Ok(false),
        "data is waiting: do not sleep"
    );
}

#[test]
fn waiting_producer_is_woken_when_space_frees() {
    let shared = Shared::new(32);
    let (producer, consumer) = (shared.producer(), shared.consumer());
    while pushed(producer.push(&[1; 4])) {}
    assert_eq!(producer.prepare_wait(4), Ok(true));
    let mut bytes = [0; 64];
    let mut out = alloc_free::Buffer::new(&mut bytes);
    assert_eq!(
        consumer.pop(&mut out),
        Ok(Pop::Record {
            wake_producer: true,
            last: false
        })
    );
    assert_eq!(producer.prepare_wait(4), Ok(false));
}

#[test]
fn a_pop_tells_the_last_record_across_wrap_around() {
    let shared = Shared::new(64);
    let (producer, consumer) = (shared.producer(), shared.consumer());
    let mut bytes = [0; 64];
    let mut last = |consumer: &Consumer| {
        let mut out = alloc_free::Buffer::new(&mut bytes);
        match consumer.pop(&mut out) {
            Ok(Pop::Record { last, .. }) => last,
            other => panic!("expected a record, got {other:?}"),
        }
    };
    // 24-byte records: the third of each round wraps, after padding.
    for _ in 0..10 {
        assert!(pushed(producer.push(&[7; 20])));
        assert!(pushed(producer.push(&[8; 20])));
        assert!(!last(&consumer));
        assert!(last(&consumer));
        assert_eq!(pop(&consumer), Ok(None));
    }
}

#[cfg(not(loom))]
#[test]
fn a_draft_is_invisible_until_published_and_stops_at_the_end() {
    let shared = Shared::new(64);
    let (mut producer, consumer) = (shared.producer(), shared.consumer());
    {
        let mut draft = producer.draft().unwrap();
        let room = draft.room();
        assert_eq!(room.len(), 28, "half the ring, less the length word");
        room[..3].copy_from_slice(b"abc");
    }
    assert_eq!(pop(&consumer), Ok(None), "a dropped draft sends nothing");
    let mut draft = producer.draft().unwrap();
    draft.room()[..3].copy_from_slice(b"abc");
    assert_eq!(pop(&consumer), Ok(None), "nothing before it is published");
    assert!(pushed(Ok(draft.publish(3))));
    assert_eq!(pop(&consumer), Ok(Some(b"abc".to_vec())));
    // Records of 24 and 8 bytes from offset 8: the tail at 40, 32 bytes free, 24 of them
    // before the end.
    assert!(pushed(producer.push(&[1; 20])));
    assert!(pushed(producer.push(&[2; 4])));
    assert_eq!(producer.draft().unwrap().room().len(), 20);
    while pushed(producer.push(&[3; 4])) {}
    assert_eq!(
        producer.draft().unwrap().room().len(),
        0,
        "a full ring has none"
    );
}

#[test]
fn hostile_counters_are_corrupt_not_panics() {
    let shared = Shared::new(64);
    shared.header.tail.store(1000, Relaxed);
    assert_eq!(pop(&shared.consumer()), Err(RingError::Corrupt));
    assert_eq!(shared.producer().push(b"x"), Err(RingError::Corrupt));
    #[cfg(not(loom))]
    assert!(matches!(shared.producer().draft(), Err(RingError::Corrupt)));
    shared.header.tail.store(8, Relaxed);
    // SAFETY: the test owns the ring; nothing else touches the byte.
    shared.data[0].with_mut(|p| unsafe { *p = 200 });
    assert_eq!(
        pop(&shared.consumer()),
        Err(RingError::Corrupt),
        "length beyond the data"
    );
}

/// The producer's own counter lives in shared memory too: a peer that sets both counters
/// to the same unaligned value (an empty ring, on paper) must not make a push write past
/// the end of the data.
#[test]
fn unaligned_equal_counters_are_corrupt_for_the_producer() {
    let shared = Shared::new(64);
    shared.header.head.store(62, Relaxed);
    shared.header.tail.store(62, Relaxed);
    assert_eq!(shared.producer().push(b"hello"), Err(RingError::Corrupt));
    assert_eq!(shared.producer().prepare_wait(5), Err(RingError::Corrupt));
    assert_eq!(pop(&shared.consumer()), Err(RingError::Corrupt));
}

proptest! {
    /// Any interleaving of pushes and pops keeps FIFO order and never loses a record.
    #[test]
    fn pushes_and_pops_keep_fifo_order(ops in proptest::collection::vec((any::<bool>(), 0usize..40), 1..300)) {
        let shared = Shared::new(128);
        let (producer, consumer) = (shared.producer(), shared.consumer());
        let mut model = std::collections::VecDeque::new();
        let mut next = 0u32;
        for (push, len) in ops {
            if push {
                let mut record = next.to_le_bytes().to_vec();
                record.resize(4 + len, next as u8);
                if pushed(producer.push(&record)) {
                    model.push_back(record);
                    next += 1;
                }
            } else {
                prop_assert_eq!(pop(&consumer).unwrap(), model.pop_front());
            }
        }
        while let Some(expected) = model.pop_front() {
            prop_assert_eq!(pop(&consumer).unwrap(), Some(expected));
        }
    }

    /// Whatever garbage the peer writes into the header and data, the ring reports an
    /// error or a record that fits, and never panics.
    #[test]
    fn garbage_never_panics(
        head in any::<u32>(),
        tail in any::<u32>(),
        // Counters a few bytes apart: an almost sensible ring, where bugs hide.
        near in proptest::option::of(0u32..80),
        bytes in proptest::collection::vec(any::<u8>(), 64),
    ) {
        let tail = near.map_or(tail, |delta| head.wrapping_add(delta));
        let shared = Shared::new(64);
        shared.header.head.store(head, Relaxed);
        shared.header.tail.store(tail, Relaxed);
        for (cell, byte) in shared.data.iter().zip(bytes) {
            // SAFETY: the test owns the ring; nothing else touches the byte.
            cell.with_mut(|p| unsafe { *p = byte });
        }
        if let Ok(Some(record)) = pop(&shared.consumer()) {
            prop_assert!(record.len() <= 28);
        }
        let _ = shared.producer().push(b"hello");
    }
}
