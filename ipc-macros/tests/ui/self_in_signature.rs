use ipc_macros::service;

#[service]
pub trait Cloner {
    async fn twin(&self) -> Self;
}

fn main() {}
