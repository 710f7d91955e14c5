//! Compiles the protobuf API with a vendored protoc, so building needs nothing installed, and
//! generates its proto3 JSON mapping (serde) for the command-line client.

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
    let descriptor_path = out_dir.join("khabar_descriptor.bin");
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor_path)
        // Well-known types from pbjson-types carry serde's proto3 JSON forms (RFC 3339 times).
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_protos(PROTOS, &["proto"])?;
    // FeedService's server a second time, sending `crate::api::EncodedFeedEvent` (a FeedEvent
    // around stored article bytes) instead of the generated `FeedEvent`; every other type is the
    // one generated above. Clients keep the ordinary generated code.
    let raw_dir = out_dir.join("raw");
    std::fs::create_dir_all(&raw_dir)?;
    tonic_prost_build::configure()
        .build_client(false)
        .out_dir(&raw_dir)
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .extern_path(".khabar.v1", "crate::pb::khabar::v1")
        .extern_path(".khabar.v1.FeedEvent", "crate::api::EncodedFeedEvent")
        .compile_protos(&["proto/khabar/v1/feed.proto"], &["proto"])?;
    let descriptors = std::fs::read(&descriptor_path)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .build(&[".khabar"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
