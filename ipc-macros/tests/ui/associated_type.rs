use ipc_macros::service;

#[service]
pub trait Store {
    type Value;
    async fn get(&self) -> u64;
}

fn main() {}
