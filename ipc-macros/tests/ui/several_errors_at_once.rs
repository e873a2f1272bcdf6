use ipc_macros::service;

#[service]
pub trait Store {
    fn get(&self, key: u64) -> u64;
    async fn put(&mut self, key: u64, value: u64);
    async fn name(&self) -> &str;
}

fn main() {}
