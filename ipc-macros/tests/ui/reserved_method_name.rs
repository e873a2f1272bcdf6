use ipc_macros::service;

#[service]
pub trait Dialer {
    async fn connect(&self, number: u64) -> bool;
}

fn main() {}
