//! Thin entry point: all behaviour lives in the library so tests and benches reach it.

fn main() {
    std::process::exit(orchestrator::cli::run());
}
