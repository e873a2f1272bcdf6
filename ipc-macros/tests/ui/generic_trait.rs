use ipc_macros::service;

#[service]
pub trait Store<T> {
    async fn put(&self, value: T);
}

fn main() {}
