//! The fixed-size wire form: integers and `bool`, and tuples of them, as their
//! little-endian bytes one after another.
//!
//! A method whose arguments and result are all such types (`ping(x: u64) -> u64`) needs
//! no general serializer: `#[service]` encodes it with [`Fixed`], a few stores and loads,
//! where postcard's varints cost several times that on each side. Every other method
//! travels as postcard (docs/SERVICES.md, "The wire format").

/// A value with a fixed-size wire form.
pub trait Fixed: Sized {
    /// Its size on the wire.
    const LEN: usize;
    /// Write it into `out`, which is [`LEN`](Fixed::LEN) bytes long.
    fn put(&self, out: &mut [u8]);
    /// Read it from `bytes`, which are [`LEN`](Fixed::LEN) long; `None` when they are no
    /// such value (a `bool` other than 0 or 1).
    fn get(bytes: &[u8]) -> Option<Self>;
}

macro_rules! integers {
    ($($ty:ty)*) => {$(
        impl Fixed for $ty {
            const LEN: usize = size_of::<$ty>();
            fn put(&self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_le_bytes());
            }
            fn get(bytes: &[u8]) -> Option<Self> {
                Some(<$ty>::from_le_bytes(bytes.try_into().ok()?))
            }
        }
    )*};
}

integers!(u8 u16 u32 u64 i8 i16 i32 i64);

impl Fixed for bool {
    const LEN: usize = 1;
    fn put(&self, out: &mut [u8]) {
        out[0] = u8::from(*self);
    }
    fn get(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [0] => Some(false),
            [1] => Some(true),
            _ => None,
        }
    }
}

macro_rules! tuples {
    ($(($($part:ident)*))*) => {$(
        #[allow(non_snake_case)]
        impl<$($part: Fixed),*> Fixed for ($($part,)*) {
            const LEN: usize = 0 $(+ $part::LEN)*;
            fn put(&self, _out: &mut [u8]) {
                let ($($part,)*) = self;
                let mut _at = 0;
                $(
                    $part.put(&mut _out[_at.._at + $part::LEN]);
                    _at += $part::LEN;
                )*
            }
            fn get(_bytes: &[u8]) -> Option<Self> {
                let mut _at = 0;
                Some(($({
                    let part = $part::get(_bytes.get(_at.._at + $part::LEN)?)?;
                    _at += $part::LEN;
                    part
                },)*))
            }
        }
    )*};
}

tuples!(() (A) (A B) (A B C) (A B C D) (A B C D E) (A B C D E F));

/// Encode `value` into the start of `out`: its length, or `None` when `out` is too short.
pub(super) fn encode<T: Fixed>(value: &T, out: &mut [u8]) -> Option<usize> {
    value.put(out.get_mut(..T::LEN)?);
    Some(T::LEN)
}

/// Decode exactly one `T` from `bytes`: bytes left over or missing are malformed.
pub(super) fn decode<T: Fixed>(bytes: &[u8]) -> Option<T> {
    if bytes.len() != T::LEN {
        return None;
    }
    T::get(bytes)
}
