use clap::Parser;

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
