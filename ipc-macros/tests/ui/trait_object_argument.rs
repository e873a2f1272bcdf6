use ipc_macros::service;

#[service]
pub trait Log {
    async fn write(&self, line: &dyn core::fmt::Display);
}

fn main() {}
