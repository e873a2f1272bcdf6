use ipc_macros::service;

#[service]
pub trait Log {
    async fn write(&self, line: impl AsRef<str>);
}

fn main() {}
