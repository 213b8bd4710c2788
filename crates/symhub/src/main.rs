//! The `symhub` binary: argument parsing lives in [`cli`]; everything else in the library.

/// `println!` for the commands' output, which goes on when stdout has gone: `println!` panics
/// on a closed pipe (`symhub upload … | head`, a log collector that went away), and an
/// upload stopped halfway left a transaction that looked complete (break-it pass).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

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

/// jemalloc, as Sentry's symbolicator uses: its thread caches hold the kilobyte-sized blocks
/// every request allocates (a handler's future, hyper's read buffer), which glibc's do not, and
/// it gives freed memory back. callgrind: 404 16,622 → 15,996 instructions, 10 KiB hit
/// 20,312 → 19,352; `bench/soak` peak RSS 86.8 MiB (glibc 85.6), 58.6 MiB after the load
/// (glibc 84.6). mimalloc 3 saved as much but peaked at 239 MiB in the same soak.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
