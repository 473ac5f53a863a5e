use std::process::ExitCode;

fn main() -> ExitCode {
    courier::cli::main()
}
