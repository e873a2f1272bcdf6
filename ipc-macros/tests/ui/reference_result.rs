use ipc_macros::service;

#[service]
pub trait Names {
    async fn name(&self) -> &str;
}

fn main() {}
