use ipc_macros::service;

#[service]
pub trait Store {
    #[idempotent(always)]
    async fn get(&self, key: u64) -> u64;
}

fn main() {}
