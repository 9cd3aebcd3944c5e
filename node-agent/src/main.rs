//! `gantry-node-agent` binary (placeholder): prints that it is not implemented yet and exits with status 2.

fn main() {
    eprintln!("{}", gantry_node_agent::NOT_IMPLEMENTED);
    std::process::exit(2);
}
