//! The names of kernel objects: the ids their tables issue ([`crate::table::Id`]) and
//! capability ids. They live below every module that names an object, so naming one (a
//! thread's process, a mapping's capability) needs no dependency on the object's module,
//! which may re-export its own.

/// A process.
pub type Pid = crate::table::Id;
/// A thread.
pub type Tid = crate::table::Id;
/// A port.
pub type PortId = crate::table::Id;
/// A memory object.
pub type MemId = crate::table::Id;
/// A capability, a node of the derivation tree.
pub type CapId = u64;
