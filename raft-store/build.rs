//! Generates the etcd v3 client API subset and the private Raft peer protocol.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure().compile_protos(
        &["proto/etcd/kv.proto", "proto/etcd/rpc.proto", "proto/gantry/raft.proto"],
        &["proto/etcd", "proto/gantry"],
    )?;
    Ok(())
}
