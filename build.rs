//! Generates the gRPC code and the descriptor set served by reflection.
//!
//! protoc comes from `protoc-bin-vendored`, so a fresh machine needs no system protoc.

use std::{env, error::Error, path::PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let well_known = protoc_bin_vendored::include_path()?;
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("gatehouse_descriptor.bin"))
        .compile_with_config(
            config,
            &[PathBuf::from("proto/gatehouse/v1/gatehouse.proto")],
            &[PathBuf::from("proto"), well_known],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
