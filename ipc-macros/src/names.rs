//! Names of the generated items, derived from the trait's: `KeyValue` gives
//! `KeyValueClient`, `KeyValueServer`, `KEY_VALUE_INTERFACE` and `serve_key_value`.

use proc_macro2::Ident;
use quote::format_ident;
use syn::ext::IdentExt;

pub struct Names {
    pub client: Ident,
    pub server: Ident,
    pub interface: Ident,
    pub serve: Ident,
}

impl Names {
    pub fn of(service: &Ident) -> Names {
        let name = service.unraw().to_string();
        let snake = snake_case(&name);
        Names {
            client: format_ident!("{name}Client"),
            server: format_ident!("{name}Server"),
            interface: format_ident!("{}_INTERFACE", snake.to_uppercase()),
            serve: format_ident!("serve_{snake}"),
        }
    }
}

/// `KeyValue` → `key_value`, `HTTPCache` → `http_cache`, `V2Store` → `v2_store`.
pub fn snake_case(camel: &str) -> String {
    let chars: Vec<char> = camel.chars().collect();
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() && i > 0 {
            let previous = chars[i - 1];
            let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            // A word starts after a lower-case letter or digit, and at the last capital of
            // an acronym that a lower-case word follows.
            if previous.is_lowercase()
                || previous.is_ascii_digit()
                || (previous.is_uppercase() && next_is_lower)
            {
                out.push('_');
            }
        }
        out.extend(c.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_splits_words_and_acronyms() {
        for (camel, snake) in [
            ("Hello", "hello"),
            ("KeyValue", "key_value"),
            ("HTTPCache", "http_cache"),
            ("V2Store", "v2_store"),
            ("Kv", "kv"),
            ("already_snake", "already_snake"),
        ] {
            assert_eq!(snake_case(camel), snake, "{camel}");
        }
    }

    #[test]
    fn generated_names_follow_the_trait() {
        let names = Names::of(&format_ident!("KeyValue"));
        assert_eq!(names.client, "KeyValueClient");
        assert_eq!(names.server, "KeyValueServer");
        assert_eq!(names.interface, "KEY_VALUE_INTERFACE");
        assert_eq!(names.serve, "serve_key_value");
    }
}
