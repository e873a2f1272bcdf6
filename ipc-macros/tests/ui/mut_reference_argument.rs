use ipc_macros::service;

#[service]
pub trait Filler {
    async fn fill(&self, buffer: &mut [u8]);
}

fn main() {}
