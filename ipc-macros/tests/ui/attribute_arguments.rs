use ipc_macros::service;

#[service(version = 2)]
pub trait Store {
    async fn get(&self, key: u64) -> u64;
}

fn main() {}
