//! The `symhub` binary: argument parsing lives in [`cli`]; everything else in the library.

mod cli;
mod keys_client;
mod package_client;
mod stackwalk_client;
mod target;
mod transactions_client;
mod upload_client;

fn main() -> std::process::ExitCode {
    cli::main()
}
