use clap::Parser;

/// mimalloc instead of glibc's malloc: ingest allocates and frees small objects on every
/// request (JSON values, rows), and glibc's malloc and free took a quarter of the CPU of
/// a sustained batch load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = sightline::cli::Cli::parse();
    match sightline::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sightline: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
