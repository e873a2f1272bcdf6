//! Code generation: the interface constant, the client and the dispatcher of a checked
//! service. docs/SERVICES.md shows an expansion.
//!
//! Generated code names everything by absolute path (`::keel_rt::..`, `::core::..`), so it
//! works in a `no_std` crate without `extern crate alloc` and whatever the caller has in
//! scope. Generated items allow `dead_code`: a program is usually only a client or only a
//! server, and should not be told about the half it does not use.

use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Item, ItemTrait, Type, Visibility};

use crate::model::{ByteArg, Method, Service};
use crate::names::Names;

/// The whole expansion of `#[service]` with arguments `args` on `item`.
pub fn service(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut item: ItemTrait = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(_) => return not_a_trait(item),
    };
    let generated = match Service::check(args, &mut item) {
        Ok(service) => generate(&service, &item.vis),
        // The trait itself is still emitted, so its users see only the real errors.
        Err(errors) => errors.to_compile_error(),
    };
    // Keel's executors are single-threaded: no need for the `Send` futures the lint is about.
    quote! {
        #[allow(async_fn_in_trait)]
        #item
        #generated
    }
}

/// The error for an item that is no trait, with the item left as it was.
fn not_a_trait(item: TokenStream) -> TokenStream {
    let (what, head) = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Struct(s)) => ("a struct", {
            let (struct_token, name) = (&s.struct_token, &s.ident);
            quote!(#struct_token #name)
        }),
        Ok(Item::Enum(e)) => ("an enum", {
            let (enum_token, name) = (&e.enum_token, &e.ident);
            quote!(#enum_token #name)
        }),
        Ok(Item::Fn(f)) => ("a function", {
            let (fn_token, name) = (&f.sig.fn_token, &f.sig.ident);
            quote!(#fn_token #name)
        }),
        Ok(Item::Impl(i)) => ("an impl block", {
            let (impl_token, ty) = (&i.impl_token, &i.self_ty);
            quote!(#impl_token #ty)
        }),
        _ => ("this item", item.clone()),
    };
    let message = format!(
        "#[service] goes on a trait of `async fn` methods, not on {what}: \
         declare the interface as `trait Name {{ async fn method(&self, ..) -> T; }}`"
    );
    let error = syn::Error::new_spanned(head, message).to_compile_error();
    quote!(#item #error)
}

fn generate(service: &Service, vis: &Visibility) -> TokenStream {
    let names = Names::of(&service.name);
    let interface = interface(service, &names, vis);
    let client = client(service, &names, vis);
    let server = server(service, &names, vis);
    let wire = wire_check(service);
    // The check first: its errors are the ones that say what to do.
    quote!(#wire #interface #client #server)
}

/// Containers serde carries whenever their parts are: only their parts are checked, since a
/// missing derive inside one would otherwise be reported twice, the second time as the
/// container's and without the note.
const CONTAINERS: &[&str] = &[
    "Option", "Result", "Vec", "VecDeque", "Box", "BTreeMap", "BTreeSet", "Rc", "Arc",
];

/// The types to check for `ty`: its parts, innermost first (`Option<Entry>` checks `Entry`
/// on its own), then `ty` itself unless it is a tuple, an array or one of [`CONTAINERS`].
fn parts(ty: &Type) -> Vec<(Span, TokenStream)> {
    let (inner, container): (Vec<&Type>, bool) = match ty {
        Type::Path(path) => {
            let last = path.path.segments.last();
            let known = last.is_some_and(|segment| {
                CONTAINERS.iter().any(|c| segment.ident == c)
                    && !matches!(segment.arguments, syn::PathArguments::None)
            });
            let args = path
                .path
                .segments
                .iter()
                .flat_map(|segment| match &segment.arguments {
                    syn::PathArguments::AngleBracketed(args) => args.args.iter().collect(),
                    _ => Vec::new(),
                });
            let types = args.filter_map(|arg| match arg {
                syn::GenericArgument::Type(ty) => Some(ty),
                _ => None,
            });
            (types.collect(), known)
        }
        Type::Tuple(tuple) if !tuple.elems.is_empty() => (tuple.elems.iter().collect(), true),
        Type::Array(array) => (vec![&*array.elem], true),
        Type::Paren(paren) => (vec![&*paren.elem], true),
        Type::Group(group) => (vec![&*group.elem], true),
        _ => (Vec::new(), false),
    };
    let mut all: Vec<_> = inner.into_iter().flat_map(parts).collect();
    if !container {
        all.push((ty.span(), ty.to_token_stream()));
    }
    all
}

/// Every type that crosses (an argument's decoded form, a result) must be serde's. Checked
/// here, on the trait's own tokens, so a missing derive is reported on the signature with
/// what to add, rather than deep in keel-rt suggesting a `serde` path the user's crate
/// does not have.
fn wire_check(service: &Service) -> TokenStream {
    let checks = service.methods.iter().flat_map(|method| {
        let args = method.args.iter().filter(|arg| arg.bytes.is_none());
        let args = args.flat_map(|arg| match &arg.borrowed {
            Some(referent @ Type::Path(path)) if !path.path.is_ident("str") => parts(referent),
            Some(referent) => vec![(referent.span(), owned_form(referent))],
            None => parts(&arg.ty),
        });
        args.chain(parts(&method.output))
            .map(|(span, ty)| quote_spanned!(span=> crosses::<#ty>();))
            .collect::<Vec<_>>()
    });
    quote! {
        const _: () = {
            #[diagnostic::on_unimplemented(
                message = "`{Self}` cannot cross a service: it is not serde's `Serialize` and `Deserialize`",
                label = "carried by this service method",
                note = "add `#[derive(keel_rt::serde::Serialize, keel_rt::serde::Deserialize)]` and `#[serde(crate = \"keel_rt::serde\")]` to `{Self}` (keel_rt re-exports serde: no dependency to add)"
            )]
            trait CrossesService {}
            impl<T> CrossesService for T
            where
                T: ::keel_rt::serde::Serialize + for<'de> ::keel_rt::serde::Deserialize<'de>,
            {
            }
            #[allow(dead_code)]
            fn crosses<T: CrossesService>() {}
            #[allow(dead_code)]
            fn check() {
                #(#checks)*
            }
        };
    }
}

fn interface(service: &Service, names: &Names, vis: &Visibility) -> TokenStream {
    let (name, constant) = (&service.name, &names.interface);
    let name_text = Literal::string(&service.name.to_string());
    let signature = Literal::string(&service.signature());
    let doc = format!(
        "The wire identity of [`{name}`]: its name and the hash of its signature, \
         which client and server compare at connect."
    );
    quote! {
        #[doc = #doc]
        #[allow(dead_code)]
        #vis const #constant: ::keel_rt::service::Interface = ::keel_rt::service::Interface {
            name: #name_text,
            hash: ::keel_rt::service::interface_hash(#signature),
        };
    }
}

fn client(service: &Service, names: &Names, vis: &Visibility) -> TokenStream {
    let (name, client, interface) = (&service.name, &names.client, &names.interface);
    let method_names = service
        .methods
        .iter()
        .map(|m| Literal::string(&m.name.to_string()));
    let idempotent = service
        .methods
        .iter()
        .enumerate()
        .filter(|(_, method)| method.idempotent)
        .map(|(id, _)| id_literal(id));
    let methods = service
        .methods
        .iter()
        .enumerate()
        .map(|(id, method)| client_method(id, method));
    let doc = format!(
        "A client of [`{name}`]: one connection to its server; clones share it, and any \
         number of calls may be in flight at once. Each method returns the server's result, \
         or a [`TransportError`](keel_rt::service::TransportError) when the call could not \
         be carried out.\n\n\
         A client made with `connect_named` reconnects by that name when its server is \
         gone, for calls of `#[idempotent]` methods only: such a call that fails with \
         `ServerGone` is sent again, to the server now registered under the name (and again \
         if that one dies too, a few times). \
         Other calls, and every call of a client made with `connect`, return the error."
    );
    quote! {
        #[doc = #doc]
        #[derive(Clone)]
        #[allow(dead_code)]
        #vis struct #client {
            connection: ::keel_rt::service::Connection,
        }

        #[allow(dead_code)]
        impl #client {
            /// The method names in id order: a method's id is its index here.
            pub const METHODS: &'static [&'static str] = &[#(#method_names),*];
            /// The ids of the methods marked `#[idempotent]`, safe to run twice.
            pub const IDEMPOTENT: &'static [u32] = &[#(#idempotent),*];

            /// Connect to the server behind `port` (a send capability to its wake port,
            /// which stays the caller's). A server of another version of the interface is
            /// [`InterfaceMismatch`](keel_rt::service::TransportError::InterfaceMismatch).
            /// The client cannot reconnect: once the server is gone, every call returns
            /// `ServerGone`.
            pub fn connect(
                port: ::keel_rt::ipc::Port,
            ) -> ::core::result::Result<Self, ::keel_rt::service::TransportError> {
                ::keel_rt::service::Connection::connect(port, #interface)
                    .map(|connection| #client { connection })
            }

            /// Connect to the service registered as `name` with the name service, if the
            /// system manifest lets this process reach it. The client remembers `name`:
            /// when its server is gone, an idempotent call reconnects through it (the
            /// lookup waits for a restarting server) and is sent again.
            pub fn connect_named(
                name: &str,
            ) -> ::core::result::Result<Self, ::keel_rt::service::TransportError> {
                ::keel_rt::service::Connection::connect_named(name, #interface)
                    .map(|connection| #client { connection })
            }

            /// The connection under this client, for untyped calls.
            pub fn connection(&self) -> &::keel_rt::service::Connection {
                &self.connection
            }

            /// Whether method `method` is idempotent: after `ServerGone`, a client that
            /// reconnects to a new server may send it again, as one made with
            /// `connect_named` does by itself (see docs/SERVICES.md).
            pub fn is_idempotent(method: u32) -> bool {
                Self::IDEMPOTENT.contains(&method)
            }

            #(#methods)*
        }
    }
}

/// One client method: build the argument tuple for the connection (byte strings as
/// `Bytes`, which may take arena room); `invoke` encodes it, calls, and decodes the result.
/// It retries idempotent methods after a reconnect, building the tuple again for the new
/// connection.
fn client_method(id: usize, method: &Method) -> TokenStream {
    let (name, docs, output) = (&method.name, &method.docs, &method.output);
    let id = id_literal(id);
    let params = method.args.iter().map(|arg| {
        let (name, ty) = (&arg.name, &arg.ty);
        quote!(#name: #ty)
    });
    let values = method.args.iter().map(|arg| {
        let name = &arg.name;
        match arg.bytes {
            Some(ByteArg::Slice) => quote!(::keel_rt::service::Bytes::new(connection, #name)?),
            Some(ByteArg::Vec) => quote!(::keel_rt::service::Bytes::new(connection, &#name)?),
            // By reference: the builder may run again for a retry, so it cannot move.
            None => quote!(&#name),
        }
    });
    // Named only where a `Bytes` needs it, so no unused binding reaches the user's build.
    let connection = if method.args.iter().any(|arg| arg.bytes.is_some()) {
        quote!(connection)
    } else {
        quote!(_)
    };
    let idempotent = method.idempotent;
    let idempotent_doc = idempotent.then(|| {
        quote! {
            #[doc = ""]
            #[doc = " Idempotent: when the server is gone, a client connected by name"]
            #[doc = " reconnects and sends the call again."]
        }
    });
    let call = if method.fixed() {
        let names = method.args.iter().map(|arg| &arg.name);
        quote!(invoke_fixed(#id, #idempotent, (#(#names,)*)))
    } else {
        quote! {
            invoke(#id, #idempotent, |#connection| {
                ::core::result::Result::Ok((#(#values,)*))
            })
        }
    };
    quote! {
        #(#docs)*
        #idempotent_doc
        pub async fn #name(
            &self,
            #(#params),*
        ) -> ::core::result::Result<#output, ::keel_rt::service::TransportError> {
            self.connection.#call.await
        }
    }
}

fn server(service: &Service, names: &Names, vis: &Visibility) -> TokenStream {
    let name = &service.name;
    let (server, interface, serve) = (&names.server, &names.interface, &names.serve);
    let (service_var, reply_var) = (hygienic("service"), hygienic("reply"));
    let arms = service
        .methods
        .iter()
        .enumerate()
        .map(|(id, method)| dispatch_arm(id, name, method));
    let doc = format!(
        "Serves an implementation of [`{name}`]: decodes each request, runs the method, \
         encodes its result. A request for no method of `{name}`, or whose arguments do not \
         decode, is refused (the client gets `TransportError::Rejected`)."
    );
    let serve_doc = format!(
        "Serve [`{name}`] with `service` for ever: accept every connection sent to this \
         process's wake port (`keel_rt::executor::wake::port()`), each call as its own \
         future."
    );
    quote! {
        #[doc = #doc]
        #[allow(dead_code)]
        #vis struct #server<T>(pub T);

        impl<T: #name + 'static> ::keel_rt::service::Dispatch for #server<T> {
            fn dispatch(
                #service_var: &::keel_rt::__private::Rc<Self>,
                method: u32,
                arguments: &[u8],
                #reply_var: ::keel_rt::service::Reply,
            ) -> ::core::option::Option<::keel_rt::service::Answer> {
                match method {
                    #(#arms)*
                    _ => ::core::option::Option::None,
                }
            }
        }

        #[doc = #serve_doc]
        #[allow(dead_code)]
        #vis async fn #serve(service: impl #name + 'static) -> ! {
            ::keel_rt::service::serve(#interface, #server(service)).await
        }
    }
}

/// Decode the arguments as owned values, then start the method: a future that owns them
/// and the service, lends the borrowed ones, runs, and sends the result through `reply`.
/// Byte strings arrive as `Bytes`, copied out of the arena here, while decoding.
fn dispatch_arm(id: usize, service_trait: &syn::Ident, method: &Method) -> TokenStream {
    let (name, id) = (&method.name, id_literal(id));
    let (service_var, reply_var) = (hygienic("service"), hygienic("reply"));
    let bindings: Vec<_> = method.args.iter().map(|arg| &arg.name).collect();
    let owned = method
        .args
        .iter()
        .map(|arg| match (&arg.bytes, &arg.borrowed) {
            (Some(_), _) => quote!(::keel_rt::service::Bytes<'static>),
            (None, Some(referent)) => owned_form(referent),
            (None, None) => {
                let ty = &arg.ty;
                quote!(#ty)
            }
        });
    let unpacked = method
        .args
        .iter()
        .filter(|arg| arg.bytes.is_some())
        .map(|arg| {
            let name = &arg.name;
            quote!(let #name = ::keel_rt::service::Bytes::into_vec(#name);)
        });
    let passed = method.args.iter().map(|arg| {
        let name = &arg.name;
        match (&arg.bytes, &arg.borrowed) {
            (Some(ByteArg::Slice), _) => quote!(#name.as_slice()),
            (Some(ByteArg::Vec), _) => quote!(#name),
            (None, Some(referent)) => {
                quote!(::core::borrow::Borrow::<#referent>::borrow(&#name))
            }
            (None, None) => quote!(#name),
        }
    });
    // Fixed-size arguments and result travel as their bytes (`keel_rt::service::Fixed`).
    let (decode, answer) = match method.fixed() {
        true => (quote!(decode_fixed), quote!(answer_fixed)),
        false => (quote!(decode), quote!(answer)),
    };
    quote! {
        #id => {
            let (#(#bindings,)*): (#(#owned,)*) = #reply_var.#decode(arguments)?;
            #(#unpacked)*
            let #service_var = ::keel_rt::__private::Rc::clone(#service_var);
            ::core::option::Option::Some(#reply_var.#answer(async move {
                <T as #service_trait>::#name(&#service_var.0, #(#passed),*).await
            }))
        }
    }
}

/// What the server decodes for an argument `&referent`: `String` for `str`, `Vec<T>` for
/// `[T]`, else the referent itself (so `&T` needs no `T: Clone`).
fn owned_form(referent: &Type) -> TokenStream {
    match referent {
        Type::Path(path) if path.qself.is_none() && path.path.is_ident("str") => {
            quote!(::keel_rt::__private::String)
        }
        Type::Slice(slice) => {
            let element = &slice.elem;
            quote!(::keel_rt::__private::Vec<#element>)
        }
        _ => quote!(#referent),
    }
}

/// A variable of the generated dispatcher that the method's own argument names, bound in
/// the same scope, cannot shadow.
fn hygienic(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

fn id_literal(id: usize) -> Literal {
    Literal::u32_suffixed(u32::try_from(id).expect("fewer than 2^32 methods"))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::signature::normalized;

    fn expand(source: &str) -> TokenStream {
        service(TokenStream::new(), source.parse().unwrap())
    }

    #[test]
    fn a_valid_trait_expands_to_valid_rust() {
        let expanded = expand(
            "pub trait Kv {
                /// Look a key up.
                #[idempotent]
                async fn get(&self, key: &str) -> Option<Vec<u8>>;
                async fn put(&self, key: String, value: &[u8]);
                async fn clear(&self);
            }",
        );
        let file: syn::File = syn::parse2(expanded.clone()).expect("the expansion parses");
        let names: Vec<String> = file
            .items
            .iter()
            .filter_map(|item| match item {
                Item::Trait(t) => Some(t.ident.to_string()),
                Item::Struct(s) => Some(s.ident.to_string()),
                Item::Const(c) => Some(c.ident.to_string()),
                Item::Fn(f) => Some(f.sig.ident.to_string()),
                _ => None,
            })
            .collect();
        // `_`: the const block that checks the types for serde.
        assert_eq!(
            names,
            [
                "Kv",
                "_",
                "KV_INTERFACE",
                "KvClient",
                "KvServer",
                "serve_kv"
            ]
        );
        let text = normalized(&expanded);
        assert!(text.contains("IDEMPOTENT:&'static[u32]=&[0u32]"));
        assert!(text.contains(
            r#"interface_hash("Kv(get(&str)->Option<Vec<u8>>;put(String,&[u8])->();clear()->())")"#
        ));
    }

    #[test]
    fn borrowed_arguments_are_decoded_as_owned_forms_without_clone() {
        let text = normalized(&expand(
            "trait A { async fn f(&self, a: &str, b: &[u16], c: &Point, d: u8); }",
        ));
        assert!(text.contains(
            "let(a,b,c,d,):(::keel_rt::__private::String,::keel_rt::__private::Vec<u16>,Point,u8,)"
        ));
        assert!(text.contains("::core::borrow::Borrow::<str>::borrow(&a)"));
        assert!(text.contains("::core::borrow::Borrow::<Point>::borrow(&c)"));
    }

    #[test]
    fn every_type_that_crosses_is_checked_for_serde_down_to_its_parts() {
        let text = normalized(&expand(
            "trait A { async fn f(&self, a: &str, b: &Point, c: &[u8], d: (u8, Vec<Item>)) \
             -> Result<Option<Entry>, Error>; }",
        ));
        assert!(text.contains("cannot cross a service"), "{text}");
        for check in [
            "crosses::<::keel_rt::__private::String>()",
            "crosses::<Point>()",
            "crosses::<u8>()",
            "crosses::<Item>()",
            "crosses::<Entry>()",
            "crosses::<Error>()",
        ] {
            assert!(text.contains(check), "{check} in {text}");
        }
        // Containers serde carries whenever their parts are: only the parts are checked.
        for container in [
            "crosses::<Vec<",
            "crosses::<Option<",
            "crosses::<Result<",
            "crosses::<(u8",
        ] {
            assert!(!text.contains(container), "{container} in {text}");
        }
        // Byte strings travel as `Bytes`, which are serde's by construction.
        assert!(!text.contains("crosses::<&[u8]>") && !text.contains("crosses::<[u8]>"));
    }

    #[test]
    fn method_ids_are_declaration_indices() {
        let text = normalized(&expand(
            "trait A { async fn a(&self, s: String); async fn b(&self) -> u8; }",
        ));
        assert!(text.contains("invoke(0u32,"));
        assert!(text.contains("invoke_fixed(1u32,"));
        assert!(text.contains("1u32=>{"));
    }

    #[test]
    fn only_idempotent_methods_are_invoked_with_retry() {
        let text = normalized(&expand(
            "trait A { #[idempotent] async fn a(&self, s: String); async fn b(&self, s: String); }",
        ));
        assert!(text.contains("invoke(0u32,true,|_|"));
        assert!(text.contains("invoke(1u32,false,|_|"));
    }

    #[test]
    fn integers_bools_and_their_tuples_travel_fixed_and_the_rest_as_postcard() {
        let text = normalized(&expand(
            "trait A { async fn a(&self, x: u64, y: (i8, bool)) -> (u32, u16); \
             async fn b(&self, x: u64) -> Option<u64>; async fn c(&self, x: usize); \
             async fn d(&self, x: &u64); async fn e(&self); }",
        ));
        assert!(text.contains("invoke_fixed(0u32,false,(x,y,))"), "{text}");
        assert!(text.contains("decode_fixed(arguments)"), "{text}");
        assert!(text.contains("answer_fixed(async move"), "{text}");
        // An Option, a usize (its width is the platform's), a reference: postcard.
        for id in ["1u32", "2u32", "3u32"] {
            assert!(
                text.contains(&format!("invoke({id},false,|_|")),
                "{id} in {text}"
            );
        }
        assert!(text.contains("invoke_fixed(4u32,false,())"), "{text}");
    }

    #[test]
    fn byte_strings_travel_as_bytes_and_reach_the_method_in_their_written_form() {
        let text = normalized(&expand(
            "trait A { async fn f(&self, a: &[u8], b: Vec<u8>, c: &[u16], d: u8); }",
        ));
        assert!(text.contains(
            "|connection|{::core::result::Result::Ok((\
             ::keel_rt::service::Bytes::new(connection,a)?,\
             ::keel_rt::service::Bytes::new(connection,&b)?,&c,&d,))}"
        ));
        assert!(text.contains(
            "let(a,b,c,d,):(::keel_rt::service::Bytes<'static>,\
             ::keel_rt::service::Bytes<'static>,::keel_rt::__private::Vec<u16>,u8,)"
        ));
        assert!(text.contains("let a=::keel_rt::service::Bytes::into_vec(a);"));
        assert!(text.contains(
            "<T as A>::f(&service.0,a.as_slice(),b,\
             ::core::borrow::Borrow::<[u16]>::borrow(&c),d)"
        ));
    }

    #[test]
    fn errors_come_with_the_trait_unchanged_but_for_the_markers() {
        let text = normalized(&expand("trait A { #[idempotent] fn f(&self); }"));
        assert!(text.contains("compile_error"));
        assert!(text.contains("trait A{fn f(&self);}"));
        assert!(!text.contains("AClient"));
    }

    #[test]
    fn items_that_are_no_trait_are_refused_and_kept() {
        let text = normalized(&expand("struct S;"));
        assert!(text.contains("compile_error"));
        assert!(text.contains("not on a struct"));
        assert!(text.starts_with("struct S;"));
    }
}
