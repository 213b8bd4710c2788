//! The `symhub` binary: argument parsing lives in [`cli`]; everything else in the library.

mod cli;

// glibc malloc showed up as ~10 % of the CPU of a small hit; mimalloc's thread-local
// fast paths halve that, and it returns memory to the OS as eagerly as we need.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
