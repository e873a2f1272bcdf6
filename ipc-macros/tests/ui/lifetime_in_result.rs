use ipc_macros::service;
use std::borrow::Cow;

#[service]
pub trait Names {
    async fn name(&self) -> Cow<'static, str>;
}

fn main() {}
