use ipc_macros::service;

#[service]
pub trait Log {
    async fn write_all(&self, lines: Vec<&str>);
}

fn main() {}
