//! Compiles the protobuf API with a vendored protoc, so building needs nothing installed.

use std::{env, error::Error, path::PathBuf};

const PROTOS: &[&str] = &[
    "proto/khabar/v1/article.proto",
    "proto/khabar/v1/ingest.proto",
    "proto/khabar/v1/article_service.proto",
    "proto/khabar/v1/feed.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { env::set_var("PROTOC", protoc) };

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("khabar_descriptor.bin"))
        .compile_protos(PROTOS, &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
