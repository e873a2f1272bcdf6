//! The service model: a trait of `async fn` methods, checked and reduced to what the code
//! generator needs.
//!
//! Whatever the generated code could not carry is refused here, with an error on the
//! offending tokens that says what to write instead. All the errors of one trait are
//! reported together, so fixing a trait takes one compile rather than one per mistake.

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote};
use syn::visit::{self, Visit};
use syn::{
    Attribute, FnArg, Ident, ItemTrait, Pat, Receiver, ReturnType, Signature, TraitItem,
    TraitItemFn, Type, TypePath,
};

/// The marker on a method that is safe to run twice.
pub const IDEMPOTENT: &str = "idempotent";

/// Names the generated client keeps for itself, so no method may take them.
const RESERVED: &[(&str, &str)] = &[
    ("connect", "the generated client's constructor"),
    (
        "connect_named",
        "the generated client's constructor by service name",
    ),
    (
        "connection",
        "the generated client's accessor for its connection",
    ),
    ("is_idempotent", "the generated client's idempotency query"),
];

/// A checked service trait.
pub struct Service {
    pub name: Ident,
    pub methods: Vec<Method>,
}

/// One method; its id on the wire is its index in [`Service::methods`].
pub struct Method {
    pub name: Ident,
    /// Its doc comments, repeated on the client's method.
    pub docs: Vec<Attribute>,
    pub args: Vec<Arg>,
    /// The result type as written (`()` when none is).
    pub output: Type,
    pub idempotent: bool,
}

pub struct Arg {
    pub name: Ident,
    /// As written: the client's method takes exactly this.
    pub ty: Type,
    /// For an argument `&T`, the `T`: the server decodes an owned form and lends it out.
    pub borrowed: Option<Type>,
    /// For `&[u8]` and `Vec<u8>`: the bytes travel as `keel_rt::service::Bytes`, inline
    /// when small and through the connection's bulk arena when large.
    pub bytes: Option<ByteArg>,
}

/// How a byte-string argument is written, which decides how the server hands it over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteArg {
    /// `&[u8]`: lent to the method.
    Slice,
    /// `Vec<u8>`: given to the method.
    Vec,
}

impl ByteArg {
    /// The form of `ty`, if it is `&[u8]` or `Vec<u8>` (by any path ending in `Vec`).
    fn of(ty: &Type) -> Option<ByteArg> {
        match ty {
            Type::Reference(reference) if reference.mutability.is_none() => {
                let Type::Slice(slice) = &*reference.elem else {
                    return None;
                };
                is_u8(&slice.elem).then_some(ByteArg::Slice)
            }
            Type::Path(TypePath { qself: None, path }) => {
                let last = path.segments.last()?;
                let syn::PathArguments::AngleBracketed(generics) = &last.arguments else {
                    return None;
                };
                let element = match generics.args.iter().collect::<Vec<_>>()[..] {
                    [syn::GenericArgument::Type(element)] => element,
                    _ => return None,
                };
                (last.ident == "Vec" && is_u8(element)).then_some(ByteArg::Vec)
            }
            _ => None,
        }
    }
}

fn is_u8(ty: &Type) -> bool {
    matches!(ty, Type::Path(path) if path.qself.is_none() && path.path.is_ident("u8"))
}

/// Errors gathered while checking, reported together.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn add(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        let error = syn::Error::new_spanned(tokens, message);
        match &mut self.0 {
            Some(errors) => errors.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish<T>(self, value: T) -> syn::Result<T> {
        self.0.map_or(Ok(value), Err)
    }
}

impl Service {
    /// Check `item` (the attribute's arguments are `args`). The `#[idempotent]` markers are
    /// taken off `item` whatever the outcome, so it can be emitted as plain Rust either way.
    pub fn check(args: TokenStream, item: &mut ItemTrait) -> syn::Result<Service> {
        let mut errors = Errors::default();
        if !args.is_empty() {
            errors.add(args, "#[service] takes no arguments");
        }
        if let Some(unsafety) = item.unsafety {
            errors.add(unsafety, "a service trait cannot be `unsafe`");
        }
        if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
            errors.add(
                &item.generics,
                "a service trait cannot be generic: its interface is one wire format; \
                 use concrete types",
            );
        }
        let mut methods = Vec::new();
        for trait_item in &mut item.items {
            match trait_item {
                TraitItem::Fn(function) => {
                    if let Some(method) = Method::check(function, &mut errors) {
                        methods.push(method);
                    }
                }
                other => errors.add(
                    &*other,
                    "a service trait holds only `async fn` methods: move this item out of the trait",
                ),
            }
        }
        errors.finish(Service {
            name: item.ident.clone(),
            methods,
        })
    }
}

impl Method {
    /// Check one method, adding what is wrong with it to `errors`; `None` if anything is.
    fn check(function: &mut TraitItemFn, errors: &mut Errors) -> Option<Method> {
        let before = errors.0.is_some();
        let idempotent = take_idempotent(&mut function.attrs, errors);
        let sig = &function.sig;
        check_qualifiers(sig, errors);
        if let Some((_, purpose)) = RESERVED.iter().find(|(name, _)| sig.ident == name) {
            errors.add(
                &sig.ident,
                format!("`{}` is {purpose}: rename the method", sig.ident),
            );
        }
        check_receiver(sig, errors);
        let args = sig
            .inputs
            .iter()
            .skip(1)
            .enumerate()
            .filter_map(|(index, input)| match input {
                FnArg::Typed(typed) => Some(Arg::check(index, &typed.pat, &typed.ty, errors)),
                // A second receiver: the compiler reports it.
                FnArg::Receiver(_) => None,
            })
            .collect();
        let output = match &sig.output {
            ReturnType::Default => syn::parse_quote!(()),
            ReturnType::Type(_, ty) => {
                TypeCheck::run(ty, Position::Result, errors);
                (**ty).clone()
            }
        };
        let docs = function
            .attrs
            .iter()
            .filter(|attr| attr.path().is_ident("doc"))
            .cloned()
            .collect();
        let failed = errors.0.is_some() && !before;
        (!failed).then(|| Method {
            name: sig.ident.clone(),
            docs,
            args,
            output,
            idempotent,
        })
    }

    /// Whether the arguments and the result all have the fixed-size wire form
    /// (`keel_rt::service::Fixed`: integers, `bool`, tuples of them), so that the call
    /// travels without postcard.
    pub fn fixed(&self) -> bool {
        self.args.len() <= FIXED_TUPLE
            && self
                .args
                .iter()
                .all(|arg| arg.bytes.is_none() && is_fixed(&arg.ty))
            && is_fixed(&self.output)
    }
}

/// The longest tuple with a fixed-size wire form.
const FIXED_TUPLE: usize = 6;

/// Whether `ty`, as written, has the fixed-size wire form. Judged by name: the primitive
/// types are not keywords, but a program that renames something else `u64` has bigger
/// troubles than this.
fn is_fixed(ty: &Type) -> bool {
    const PRIMITIVES: &[&str] = &["u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "bool"];
    match ty {
        Type::Path(TypePath { qself: None, path }) => path
            .get_ident()
            .is_some_and(|ident| PRIMITIVES.iter().any(|p| ident == p)),
        Type::Tuple(tuple) => tuple.elems.len() <= FIXED_TUPLE && tuple.elems.iter().all(is_fixed),
        Type::Paren(paren) => is_fixed(&paren.elem),
        Type::Group(group) => is_fixed(&group.elem),
        _ => false,
    }
}

/// Remove `#[idempotent]` from `attrs`; whether it was there.
fn take_idempotent(attrs: &mut Vec<Attribute>, errors: &mut Errors) -> bool {
    let mut found = false;
    attrs.retain(|attr| {
        if !attr.path().is_ident(IDEMPOTENT) {
            return true;
        }
        if attr.meta.require_path_only().is_err() {
            errors.add(attr, "#[idempotent] takes no arguments");
        }
        found = true;
        false
    });
    found
}

/// `async`, and nothing the wire cannot honour: no `const`, `unsafe`, ABI, generics.
fn check_qualifiers(sig: &Signature, errors: &mut Errors) {
    if sig.asyncness.is_none() {
        let (fn_token, name) = (&sig.fn_token, &sig.ident);
        errors.add(
            quote!(#fn_token #name),
            format!(
                "service methods must be `async fn`: write `async fn {name}(&self, ..)` \
                 (the client awaits the server's answer)"
            ),
        );
    }
    if let Some(constness) = sig.constness {
        errors.add(constness, "service methods cannot be `const`");
    }
    if let Some(unsafety) = sig.unsafety {
        errors.add(unsafety, "service methods cannot be `unsafe`");
    }
    if let Some(abi) = &sig.abi {
        errors.add(abi, "service methods cannot declare an ABI");
    }
    if let Some(variadic) = &sig.variadic {
        errors.add(variadic, "service methods cannot be variadic");
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.add(
            &sig.generics,
            "service methods cannot be generic: each method has one wire format; \
             use concrete types",
        );
    }
}

/// The first parameter must be `&self`.
fn check_receiver(sig: &Signature, errors: &mut Errors) {
    let receiver = match sig.inputs.first() {
        Some(FnArg::Receiver(receiver)) => receiver,
        _ => {
            let name = &sig.ident;
            return errors.add(
                name,
                format!(
                    "service methods take `&self` first: write `async fn {name}(&self, ..)` \
                     (the server calls them on its one implementation)"
                ),
            );
        }
    };
    match receiver {
        Receiver {
            reference: Some((_, None)),
            mutability: None,
            colon_token: None,
            ..
        } => {}
        Receiver {
            reference: Some((_, Some(lifetime))),
            ..
        } => errors.add(
            lifetime,
            "service methods cannot name lifetimes: write `&self`",
        ),
        Receiver {
            reference: Some(_),
            mutability: Some(_),
            ..
        } => errors.add(
            receiver,
            "service methods take `&self`, not `&mut self`: the server runs calls \
             concurrently, so keep mutable state in a `Cell` or `RefCell`",
        ),
        _ => errors.add(
            receiver,
            "service methods take `&self`, not `self` or a typed receiver: write `&self` \
             (the server keeps its implementation for the next call)",
        ),
    }
}

impl Arg {
    fn check(index: usize, pat: &Pat, ty: &Type, errors: &mut Errors) -> Arg {
        let name = match pat {
            Pat::Ident(binding) => binding.ident.clone(),
            // A pattern (allowed in a default body): the client needs a name of its own.
            _ => format_ident!("__arg{index}"),
        };
        let borrowed = match ty {
            Type::Reference(reference) => {
                if let Some(mutability) = reference.mutability {
                    errors.add(
                        mutability,
                        "`&mut` arguments are not supported: changes could not travel back \
                         to the client; take the value and return the result",
                    );
                }
                if let Some(lifetime) = &reference.lifetime {
                    errors.add(
                        lifetime,
                        "service methods cannot name lifetimes: write `&T` without one",
                    );
                }
                TypeCheck::run(&reference.elem, Position::Referent, errors);
                Some((*reference.elem).clone())
            }
            _ => {
                TypeCheck::run(ty, Position::Argument, errors);
                None
            }
        };
        Arg {
            name,
            ty: ty.clone(),
            borrowed,
            bytes: ByteArg::of(ty),
        }
    }
}

/// Where a type stands in a signature: it decides what is allowed and what to suggest.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Position {
    /// An argument passed by value.
    Argument,
    /// The `T` of an argument `&T`.
    Referent,
    /// The result.
    Result,
}

/// Walks a type for what cannot cross a service: borrows, `impl Trait`, trait objects,
/// function pointers, `Self`.
struct TypeCheck<'a> {
    position: Position,
    errors: &'a mut Errors,
}

impl TypeCheck<'_> {
    fn run(ty: &Type, position: Position, errors: &mut Errors) {
        TypeCheck { position, errors }.visit_type(ty);
    }
}

impl<'ast> Visit<'ast> for TypeCheck<'_> {
    // Not recursing after an error keeps to one error per bad type.
    fn visit_type_reference(&mut self, reference: &'ast syn::TypeReference) {
        let message = match self.position {
            Position::Result => {
                "the result cannot borrow: the client decodes it into a value of its own; \
                 return an owned type (`String`, `Vec<T>`, `T`)"
            }
            Position::Referent => {
                "an argument borrows only once: write `&T` for an owned `T` \
                 (`&str`, `&[u8]`, `&MyStruct`)"
            }
            Position::Argument => {
                "a reference is supported only as the whole argument (`&str`, `&[u8]`, `&T`); \
                 inside another type use an owned type (`String`, `Vec<T>`, `T`)"
            }
        };
        self.errors.add(reference, message);
    }

    fn visit_lifetime(&mut self, lifetime: &'ast syn::Lifetime) {
        let message = match self.position {
            Position::Result => {
                "the result cannot hold lifetimes: the client decodes it into a value of its \
                 own; return an owned type"
            }
            _ => "service methods cannot name lifetimes: use owned types",
        };
        self.errors.add(lifetime, message);
    }

    fn visit_type_impl_trait(&mut self, ty: &'ast syn::TypeImplTrait) {
        let message = match self.position {
            Position::Result => "`impl Trait` results are not supported: return a concrete type",
            _ => {
                "`impl Trait` arguments are not supported: the server decodes each argument \
                 into one concrete type; use that type"
            }
        };
        self.errors.add(ty, message);
    }

    fn visit_type_trait_object(&mut self, ty: &'ast syn::TypeTraitObject) {
        self.errors.add(
            ty,
            "trait objects cannot cross a service: use a concrete type \
             (an enum, for a choice of types)",
        );
    }

    fn visit_type_bare_fn(&mut self, ty: &'ast syn::TypeBareFn) {
        self.errors.add(
            ty,
            "function pointers cannot cross a service: they mean nothing in another process",
        );
    }

    fn visit_type_path(&mut self, ty: &'ast TypePath) {
        let names_self = ty.qself.is_none()
            && ty
                .path
                .segments
                .first()
                .is_some_and(|segment| segment.ident == "Self");
        if names_self {
            return self.errors.add(
                ty,
                "`Self` cannot appear in a service signature: the client is another type; \
                 name the type",
            );
        }
        visit::visit_type_path(self, ty);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(source: &str) -> syn::Result<Service> {
        let mut item: ItemTrait = syn::parse_str(source).expect("a trait");
        Service::check(TokenStream::new(), &mut item)
    }

    fn error(source: &str) -> String {
        let errors = check(source).err().expect("an error");
        errors
            .into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn methods_keep_declaration_order_and_idempotency() {
        let service = check(
            "trait Kv {
                #[idempotent] async fn get(&self, key: &str) -> Option<Vec<u8>>;
                async fn put(&self, key: String, value: &[u8]);
                /// Gone.
                #[idempotent]
                async fn delete(&self, key: &str) -> bool;
            }",
        )
        .unwrap();
        let names: Vec<String> = service.methods.iter().map(|m| m.name.to_string()).collect();
        assert_eq!(names, ["get", "put", "delete"]);
        let idempotent: Vec<bool> = service.methods.iter().map(|m| m.idempotent).collect();
        assert_eq!(idempotent, [true, false, true]);
        assert_eq!(service.methods[2].docs.len(), 1);
    }

    #[test]
    fn borrowed_arguments_are_decoded_as_their_referent() {
        let service =
            check("trait A { async fn f(&self, a: &str, b: &[u8], c: u32, d: &Point); }").unwrap();
        let borrowed: Vec<Option<String>> = service.methods[0]
            .args
            .iter()
            .map(|arg| arg.borrowed.as_ref().map(|ty| quote!(#ty).to_string()))
            .collect();
        assert_eq!(
            borrowed,
            [
                Some("str".into()),
                Some("[u8]".into()),
                None,
                Some("Point".into())
            ]
        );
    }

    #[test]
    fn byte_strings_are_told_apart_from_other_slices_and_vectors() {
        let service = check(
            "trait A { async fn f(&self, a: &[u8], b: Vec<u8>, c: alloc::vec::Vec<u8>, \
             d: &[u16], e: Vec<u16>, f: [u8; 4], g: &Vec<u8>, h: Option<Vec<u8>>); }",
        )
        .unwrap();
        let bytes: Vec<Option<ByteArg>> = service.methods[0]
            .args
            .iter()
            .map(|arg| arg.bytes)
            .collect();
        assert_eq!(
            bytes,
            [
                Some(ByteArg::Slice),
                Some(ByteArg::Vec),
                Some(ByteArg::Vec),
                None,
                None,
                None,
                None,
                None
            ]
        );
    }

    #[test]
    fn a_missing_result_is_the_unit_type() {
        let service = check("trait A { async fn f(&self); }").unwrap();
        let output = &service.methods[0].output;
        assert_eq!(quote!(#output).to_string(), "()");
    }

    #[test]
    fn the_idempotent_marker_is_removed_from_the_trait() {
        let mut item: ItemTrait =
            syn::parse_str("trait A { #[idempotent] async fn f(&self); }").unwrap();
        Service::check(TokenStream::new(), &mut item).unwrap();
        assert!(!quote!(#item).to_string().contains("idempotent"));
    }

    #[test]
    fn unsupported_signatures_say_what_to_write_instead() {
        let cases = [
            ("trait A { fn f(&self); }", "must be `async fn`"),
            ("trait A { async fn f(); }", "take `&self` first"),
            ("trait A { async fn f(&mut self); }", "not `&mut self`"),
            ("trait A { async fn f(self); }", "not `self`"),
            ("trait A { async fn f(self: Box<Self>); }", "not `self`"),
            (
                "trait A { async fn f<T>(&self, t: T); }",
                "cannot be generic",
            ),
            (
                "trait A<T> { async fn f(&self); }",
                "trait cannot be generic",
            ),
            (
                "trait A { async fn f(&self, x: impl Into<u32>); }",
                "`impl Trait` arguments",
            ),
            (
                "trait A { async fn f(&self, x: &mut u32); }",
                "`&mut` arguments",
            ),
            (
                "trait A { async fn f(&self, x: Vec<&str>); }",
                "only as the whole argument",
            ),
            (
                "trait A { async fn f(&self, x: &&str); }",
                "borrows only once",
            ),
            (
                "trait A { async fn f(&self, x: &dyn Fn()); }",
                "trait objects",
            ),
            (
                "trait A { async fn f(&self) -> &str; }",
                "result cannot borrow",
            ),
            (
                "trait A { async fn f(&self) -> Cow<'static, str>; }",
                "result cannot hold lifetimes",
            ),
            (
                "trait A { async fn f(&self) -> impl Sized; }",
                "`impl Trait` results",
            ),
            (
                "trait A { async fn f(&self) -> Self; }",
                "`Self` cannot appear",
            ),
            (
                "trait A { async fn connect(&self); }",
                "client's constructor",
            ),
            ("trait A { type T; }", "only `async fn` methods"),
            (
                "trait A { #[idempotent(yes)] async fn f(&self); }",
                "takes no arguments",
            ),
        ];
        for (source, expected) in cases {
            let message = error(source);
            assert!(
                message.contains(expected),
                "{source}: expected {expected:?} in {message:?}"
            );
        }
    }

    #[test]
    fn every_error_of_a_trait_is_reported_at_once() {
        let source = "trait A { fn f(&self); async fn g(&mut self); async fn h(&self) -> &str; }";
        let count = check(source).err().unwrap().into_iter().count();
        assert_eq!(count, 3);
    }
}
