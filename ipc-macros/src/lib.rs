//! `#[service]`: a Keel service's client and dispatcher, generated from a trait.
//!
//! Programs use it as `#[keel_rt::service]`; keel-rt re-exports it. docs/SERVICES.md is the
//! guide: how to write a service and its client, the wire format, errors, idempotency.
//!
//! | module | holds |
//! |---|---|
//! | `model` | the trait checked and reduced to methods, arguments and results |
//! | `signature` | the normalized signature text behind the interface hash |
//! | `names` | the generated items' names |
//! | `expand` | the generated code |

mod expand;
mod model;
mod names;
mod signature;

use proc_macro::TokenStream;

/// Turns a trait of `async fn` methods into a Keel service: the trait, a typed client, a
/// dispatcher for any implementation, and the interface's wire identity.
///
/// ```ignore
/// use keel_rt::serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Debug)]
/// #[serde(crate = "keel_rt::serde")]
/// pub enum KvError { NotFound, Full }
///
/// #[keel_rt::service]
/// pub trait Kv {
///     /// The value under `key`.
///     #[idempotent]
///     async fn get(&self, key: &str) -> Result<Vec<u8>, KvError>;
///     async fn put(&self, key: String, value: &[u8]) -> Result<(), KvError>;
/// }
/// ```
///
/// (Examples here are not compiled: keel-rt builds only for Keel, and this crate's tests
/// run on the host. `examples/kv` is the same service, built and run by `cargo boot`.)
///
/// This generates, next to `Kv` (which gets `#[allow(async_fn_in_trait)]`):
///
/// - `KV_INTERFACE: keel_rt::service::Interface`: the name and
///   `interface_hash("Kv(get(&str)->Result<Vec<u8>,KvError>;put(String,&[u8])->Result<(),KvError>)")`.
///   Changing a method's types, or adding, removing or reordering methods, changes the
///   hash, and connecting then fails with `TransportError::InterfaceMismatch`.
/// - `KvClient` (`Clone`): `KvClient::connect(port)`, `KvClient::connect_named(name)`
///   (through init's name service), and one `async fn` per method with the same
///   arguments, returning `Result<R, TransportError>` for the method's result `R`.
///   Arguments travel as one tuple encoded with `keel_rt::service::encode`, except that
///   `&[u8]` and `Vec<u8>` arguments travel as `keel_rt::service::Bytes`: inline up to
///   `keel_rt::service::INLINE_LIMIT` (4 KiB), above it copied once by the client into the
///   connection's bulk arena (user space, never the kernel); larger than the arena's free
///   room is `TooLarge`. Clones share the connection (and any reconnect); calls may be in
///   flight at once (`join_all` them).
///   `KvClient::METHODS` lists the method names, `IDEMPOTENT` the ids of the idempotent
///   ones, and `is_idempotent(id)` asks.
/// - `KvServer<T>`: `keel_rt::service::Dispatch` for any `T: Kv`. Arguments are decoded
///   as owned values (`&str` as `String`, `&[u8]` as `Vec<u8>`, `&T` as `T`) and lent to
///   the method; byte strings in the arena are copied out once (volatile reads) before the
///   method sees them, so it never holds a reference into memory the client writes. An
///   unknown method id, undecodable arguments or an arena range outside the arena are
///   refused.
/// - `serve_kv(impl Kv + 'static) -> !`: serve it on this process's wake port for ever.
///
/// Method ids are declaration indices: `get` is 0, `put` 1. The signature hash covers the
/// order, so a renumbering can never go unnoticed.
///
/// ```ignore
/// struct Store(core::cell::RefCell<BTreeMap<String, Vec<u8>>>);
///
/// impl Kv for Store {
///     async fn get(&self, key: &str) -> Result<Vec<u8>, KvError> {
///         self.0.borrow().get(key).cloned().ok_or(KvError::NotFound)
///     }
///     async fn put(&self, key: String, value: &[u8]) -> Result<(), KvError> {
///         self.0.borrow_mut().insert(key, value.to_vec());
///         Ok(())
///     }
/// }
///
/// // The server:
/// serve_kv(Store(Default::default())).await
///
/// // A client, given a send capability to the server's wake port:
/// let kv = KvClient::connect(port)?;
/// kv.put("answer".into(), b"42").await?.expect("room");
/// assert_eq!(kv.get("answer").await?, Ok(b"42".to_vec()));
/// ```
///
/// # `#[idempotent]`
///
/// Marks a method that is safe to run twice. The marker is recorded (`IDEMPOTENT`,
/// `is_idempotent`) and applied: when a call of an idempotent method fails with
/// `ServerGone` and the client was made with `connect_named`, the client looks the name up
/// again (the lookup waits for a restarting server), reconnects, and sends the call again,
/// to the new server (and again after each new server that dies in turn, a few times). Calls of other methods return `ServerGone`: the dead server
/// may have run them. A client made with `connect(port)` cannot reconnect, and returns
/// `ServerGone` for every method.
///
/// # What is refused
///
/// Each of these is a compile error saying what to write instead: a method that is not
/// `async fn`; a first parameter other than `&self` (`&mut self`, `self`, none); generic
/// methods or traits; `impl Trait` and `dyn Trait` anywhere; references other than a whole
/// argument `&T` (so `&mut T`, `&&T`, `Vec<&str>`, named lifetimes); references or
/// lifetimes in the result; `Self` in a signature; items other than methods in the trait;
/// methods named `connect`, `connect_named`, `connection` or `is_idempotent`; and the
/// attribute on anything but a trait.
#[proc_macro_attribute]
pub fn service(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::service(args.into(), item.into()).into()
}
