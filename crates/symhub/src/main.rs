//! The `symhub` binary: argument parsing lives in [`cli`]; everything else in the library.

mod cli;
mod keys_client;
mod package_client;
mod stackwalk_client;
mod target;
mod transactions_client;
mod upload_client;

/// mimalloc, not glibc's malloc: a request makes a few dozen small allocations, and the
/// larger ones (a handler's future, hyper's buffers) miss glibc's thread cache. Per request
/// (callgrind): remembered 404 18,474 -> 17,678 instructions, 10 KiB hit 22,404 -> 21,204,
/// debuginfod hit 33,180 -> 29,567. Without transparent huge pages (`no_thp`): with them
/// idle RSS was 29 MiB against glibc's 17; without, 20.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
