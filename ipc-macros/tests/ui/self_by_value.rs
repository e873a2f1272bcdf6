use ipc_macros::service;

#[service]
pub trait Session {
    async fn close(self);
}

fn main() {}
