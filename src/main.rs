use std::process::ExitCode;

/// jemalloc instead of glibc's malloc. An event's buffer is allocated on the source's thread
/// and freed on a runtime worker; with glibc that cost about a sixth of courier's CPU in
/// scenario 1 and more with a stalled destination (docs/benchmarks.md, "jemalloc").
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    courier::cli::main()
}
