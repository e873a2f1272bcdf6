use ipc_macros::service;

#[service]
pub trait Clock {
    async fn now() -> u64;
}

fn main() {}
