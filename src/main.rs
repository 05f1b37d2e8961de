//! The `platform-capstone` binary: parse arguments, set up logging, run.

fn main() -> std::process::ExitCode {
    platform_capstone::cli::main()
}
