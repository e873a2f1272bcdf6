use ipc_macros::service;

#[service]
pub struct Store {
    values: Vec<u64>,
}

fn main() {}
