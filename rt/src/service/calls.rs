//! A link's calls in flight, by call id: the client's side of matching responses to calls.
//!
//! A call's id is the index of its slot, and a slot is reused only once its call is over:
//! answered, or given up by its caller and then answered (a response to it may still be
//! on its way, and must not reach the slot's next call). Each slot keeps its response
//! buffer from call to call, so a busy link stops allocating once it has as many slots as
//! it ever has calls in flight.

use alloc::vec::Vec;
use core::task::Waker;

use super::TransportError;

enum State {
    Free,
    /// Sent, no response yet: the waker of the call's future, once it has been polled.
    Waiting(Option<Waker>),
    /// Answered: the result is in the slot's buffer (when `Ok`).
    Done(Result<(), TransportError>),
    /// Sent, then its caller gave up: the slot is free once the response comes.
    Abandoned,
}

struct Slot {
    state: State,
    response: Vec<u8>,
}

/// The calls of one link.
#[derive(Default)]
pub(super) struct Calls {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Slots not free.
    taken: usize,
    /// Slots given up by their callers, waiting for their responses.
    abandoned: usize,
}

impl Calls {
    /// Whether some call is still waiting for (or has not yet taken) its response.
    pub(super) fn busy(&self) -> bool {
        self.taken != 0
    }

    /// Whether exactly one call is in flight, with a caller still waiting for it: that
    /// call may file its own response, with no reader in between.
    pub(super) fn lone(&self) -> bool {
        self.taken == 1 && self.abandoned == 0
    }

    /// Whether call `id` is the lone call in flight and still has no outcome.
    pub(super) fn lone_waiting(&self, id: u32) -> bool {
        self.lone() && matches!(self.slots[id as usize].state, State::Waiting(_))
    }

    /// Wake every call waiting for its response, so each polls again.
    pub(super) fn wake_waiting(&self) {
        for slot in &self.slots {
            if let State::Waiting(Some(waker)) = &slot.state {
                waker.wake_by_ref();
            }
        }
    }

    /// A slot for a new call: its id.
    pub(super) fn open(&mut self) -> u32 {
        self.taken += 1;
        match self.free.pop() {
            Some(id) => {
                self.slots[id as usize].state = State::Waiting(None);
                id
            }
            None => {
                self.slots.push(Slot {
                    state: State::Waiting(None),
                    response: Vec::new(),
                });
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 calls in flight")
            }
        }
    }

    fn release(&mut self, id: u32) {
        self.slots[id as usize].state = State::Free;
        self.free.push(id);
        self.taken -= 1;
    }

    /// Free given-up slot `id`: its response came, or none will.
    fn release_abandoned(&mut self, id: u32) {
        self.abandoned -= 1;
        self.release(id);
    }

    /// Call `id` is over for its caller: it took its outcome, or gave up; `sent` says
    /// whether its request went out, so that a response may still come. True when the
    /// slot now waits for that response with no caller: someone else must file it.
    pub(super) fn close(&mut self, id: u32, sent: bool) -> bool {
        match self.slots[id as usize].state {
            State::Waiting(_) if sent => {
                self.slots[id as usize].state = State::Abandoned;
                self.abandoned += 1;
                return true;
            }
            State::Free | State::Abandoned => {}
            State::Waiting(_) | State::Done(_) => self.release(id),
        }
        false
    }

    /// Call `id`'s outcome once its response has come: the result's bytes, or what went
    /// wrong. Until then, `waker` is woken when it does.
    pub(super) fn poll(&mut self, id: u32, waker: &Waker) -> Option<Result<&[u8], TransportError>> {
        let slot = &mut self.slots[id as usize];
        match &mut slot.state {
            State::Waiting(registered) => {
                if !registered.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    *registered = Some(waker.clone());
                }
                None
            }
            State::Done(outcome) => Some(outcome.map(|()| slot.response.as_slice())),
            State::Free | State::Abandoned => Some(Err(TransportError::Disconnected)),
        }
    }

    /// File the response to call `id`: its result, or what went wrong; its call is woken,
    /// unless it is `polling`, the call looking now. A response to no call of ours is
    /// ignored: only its sender is confused.
    pub(super) fn answer(
        &mut self,
        id: u32,
        result: Result<&[u8], TransportError>,
        polling: Option<u32>,
    ) {
        let Some(slot) = self.slots.get_mut(id as usize) else {
            return;
        };
        match &mut slot.state {
            State::Waiting(waker) => {
                let waker = waker.take();
                slot.state = State::Done(result.map(|bytes| {
                    slot.response.clear();
                    slot.response.extend_from_slice(bytes);
                }));
                if let Some(waker) = waker
                    && polling != Some(id)
                {
                    waker.wake();
                }
            }
            State::Abandoned => self.release_abandoned(id),
            State::Free | State::Done(_) => {}
        }
    }

    /// The link is broken: every call waiting gets `error`, and no response will come for
    /// those given up.
    pub(super) fn fail(&mut self, error: TransportError) {
        for id in 0..self.slots.len() as u32 {
            match &mut self.slots[id as usize].state {
                State::Waiting(waker) => {
                    let waker = waker.take();
                    self.slots[id as usize].state = State::Done(Err(error));
                    if let Some(waker) = waker {
                        waker.wake();
                    }
                }
                State::Abandoned => self.release_abandoned(id),
                State::Free | State::Done(_) => {}
            }
        }
    }
}
