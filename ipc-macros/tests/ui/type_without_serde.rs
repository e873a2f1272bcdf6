// A user type without serde derives: the error is on the signature and says what to add.
// keel-rt builds only for Keel, so this crate stands in for it (`extern crate self`), with
// just the names the expansion uses and no serde bounds of its own: only the macro's check
// can complain.
extern crate self as keel_rt;

pub use serde;

pub mod __private {
    pub use std::rc::Rc;
    pub use std::string::String;
    pub use std::vec::Vec;
}

pub mod ipc {
    pub struct Port;
}

pub mod service {
    use std::future::Future;
    use std::rc::Rc;

    pub struct Interface {
        pub name: &'static str,
        pub hash: u64,
    }
    pub const fn interface_hash(_: &str) -> u64 {
        0
    }
    pub enum TransportError {}
    #[derive(Clone)]
    pub struct Connection;
    impl Connection {
        pub fn connect(_: super::ipc::Port, _: Interface) -> Result<Self, TransportError> {
            Ok(Connection)
        }
        pub fn connect_named(_: &str, _: Interface) -> Result<Self, TransportError> {
            Ok(Connection)
        }
        pub async fn invoke<A, R>(
            &self,
            _: u32,
            _: bool,
            _: impl Fn(&Connection) -> Result<A, TransportError>,
        ) -> Result<R, TransportError> {
            loop {}
        }
    }
    pub struct Reply;
    pub struct Answer;
    impl Reply {
        pub fn decode<T>(&self, _: &[u8]) -> Option<T> {
            None
        }
        pub fn answer<R>(self, _: impl Future<Output = R> + 'static) -> Answer {
            Answer
        }
    }
    pub trait Dispatch {
        fn dispatch(
            service: &Rc<Self>,
            method: u32,
            arguments: &[u8],
            reply: Reply,
        ) -> Option<Answer>;
    }
    pub fn decode<T>(_: &[u8]) -> Option<T> {
        None
    }
    pub async fn serve<D: Dispatch>(_: Interface, _: D) -> ! {
        loop {}
    }
}

pub struct Entry {
    pub key: String,
}

#[ipc_macros::service]
pub trait Ledger {
    async fn find(&self, key: &str) -> Option<Entry>;
}

fn main() {}
