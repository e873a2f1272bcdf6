//! The interface signature: the text whose hash client and server compare at connect.
//!
//! `Kv(get(&str)->Option<Vec<u8>>;put(String,Vec<u8>)->())` lists the trait's name and
//! each method in declaration order with its argument and result types as written. Method
//! ids are declaration indices, so anything that renumbers them (adding, removing or
//! reordering methods) changes this text too, and an old client is refused at connect
//! instead of calling the wrong method. Argument names are left out: they do not reach the
//! wire, so renaming one keeps clients compatible.
//!
//! Types are spelled from their tokens, not from `TokenStream`'s `Display`, whose spacing
//! is the compiler's to change: a space goes only between two words (`dyn Trait`), so
//! `Vec < u8 >` and `Vec<u8>` are the same signature and no compiler update moves a hash.

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use quote::ToTokens;

use crate::model::{Method, Service};

impl Service {
    /// The text `interface_hash` hashes.
    pub fn signature(&self) -> String {
        let methods: Vec<String> = self.methods.iter().map(Method::signature).collect();
        format!("{}({})", self.name, methods.join(";"))
    }
}

impl Method {
    fn signature(&self) -> String {
        let args: Vec<String> = self.args.iter().map(|arg| normalized(&arg.ty)).collect();
        format!(
            "{}({})->{}",
            self.name,
            args.join(","),
            normalized(&self.output)
        )
    }
}

/// `tokens` as text with the least whitespace that keeps words apart.
pub fn normalized(tokens: &impl ToTokens) -> String {
    let mut out = String::new();
    write_tokens(tokens.to_token_stream(), &mut out);
    out
}

fn write_tokens(tokens: TokenStream, out: &mut String) {
    for token in tokens {
        match token {
            TokenTree::Group(group) => {
                let (open, close) = match group.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::None => ("", ""),
                };
                out.push_str(open);
                write_tokens(group.stream(), out);
                out.push_str(close);
            }
            TokenTree::Punct(punct) => out.push(punct.as_char()),
            TokenTree::Ident(ident) => write_word(&ident.to_string(), out),
            TokenTree::Literal(literal) => write_word(&literal.to_string(), out),
        }
    }
}

fn write_word(word: &str, out: &mut String) {
    let after_word = out
        .chars()
        .last()
        .is_some_and(|c| c.is_alphanumeric() || c == '_');
    if after_word {
        out.push(' ');
    }
    out.push_str(word);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proc_macro2::TokenStream;
    use syn::ItemTrait;

    fn signature(source: &str) -> String {
        let mut item: ItemTrait = syn::parse_str(source).unwrap();
        Service::check(TokenStream::new(), &mut item)
            .unwrap()
            .signature()
    }

    #[test]
    fn lists_the_methods_in_order_with_types_as_written() {
        assert_eq!(
            signature(
                "trait Kv {
                    async fn get(&self, key: &str) -> Option<Vec<u8>>;
                    async fn put(&self, key: String, value: &[u8]);
                    async fn list(&self) -> Result<Vec<String>, KvError>;
                }"
            ),
            "Kv(get(&str)->Option<Vec<u8>>;put(String,&[u8])->();list()->Result<Vec<String>,KvError>)"
        );
    }

    #[test]
    fn whitespace_and_argument_names_do_not_matter() {
        let tight = signature("trait A { async fn f(&self, a: Vec<u8>, b: [u8; 4]) -> (u8,u16); }");
        let loose = signature(
            "trait A { async fn f( & self , x : Vec < u8 > , y : [ u8 ; 4 ] ) -> ( u8 , u16 ) ; }",
        );
        assert_eq!(tight, loose);
        assert_eq!(tight, "A(f(Vec<u8>,[u8;4])->(u8,u16))");
    }

    #[test]
    fn an_empty_result_and_unit_are_the_same_signature() {
        assert_eq!(
            signature("trait A { async fn f(&self); }"),
            signature("trait A { async fn f(&self) -> (); }")
        );
    }

    #[test]
    fn changing_a_type_or_the_order_changes_the_signature() {
        let base = signature("trait A { async fn f(&self, a: u32); async fn g(&self); }");
        for changed in [
            "trait A { async fn f(&self, a: u64); async fn g(&self); }",
            "trait A { async fn g(&self); async fn f(&self, a: u32); }",
            "trait A { async fn f(&self, a: u32) -> u8; async fn g(&self); }",
            "trait A { async fn f(&self, a: u32); async fn g(&self); async fn h(&self); }",
            "trait B { async fn f(&self, a: u32); async fn g(&self); }",
        ] {
            assert_ne!(base, signature(changed), "{changed}");
        }
    }

    #[test]
    fn words_stay_apart() {
        let ty: syn::Type = syn::parse_str("Box < dyn Send + 'static >").unwrap();
        assert_eq!(normalized(&ty), "Box<dyn Send+'static>");
    }
}
