//! The security audit trail: denials, grants and revocations, newest kept.
//!
//! A bounded ring: a flood of denials costs the oldest records, never kernel memory.

use keel_abi::cap::AuditRecord;

const CAPACITY: usize = 256;

#[derive(Default)]
pub struct AuditLog {
    records: heapless::Deque<AuditRecord, CAPACITY>,
    /// Records ever written, including ones since overwritten.
    pub total: u64,
}

impl AuditLog {
    pub fn record(&mut self, record: AuditRecord) {
        if self.records.is_full() {
            self.records.pop_front();
        }
        let _ = self.records.push_back(record);
        self.total += 1;
    }

    /// The newest `n` records, oldest first.
    pub fn newest(&self, n: usize) -> impl Iterator<Item = &AuditRecord> {
        self.records
            .iter()
            .skip(self.records.len().saturating_sub(n))
    }
}
