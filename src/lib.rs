//! khabar (خبر, "news") ingests news articles over gRPC, validates and normalizes them, stores
//! them durably in sled and appends every change to an ordered log that feeds are served from.
//!
//! # Layout
//! - [`domain`]: the article model, its validation and text normalization, editorial metadata
//!   (embargo, status from the sender, urgency, rights, associations) and the embargo schedule.
//!   Knows nothing of gRPC or storage.
//! - [`ninjs`]: articles as IPTC ninjs 2.1 JSON and back.
//! - [`store`]: the [`store::ArticleStore`] interface and its sled implementation: key layout,
//!   on-disk records, the single writer with group commit, listings and the log.
//! - [`feed`]: subscriptions to the log: catch-up and live tail through one read path,
//!   filters, checkpoints.
//! - [`stories`]: near-duplicate detection across outlets: article fingerprints (match-keyed
//!   word shingles, bottom-k sketches) and the in-memory index that links an article to the
//!   first article of its story. Knows nothing of gRPC or storage.
//! - [`api`]: the tonic services, conversions between protobuf and domain types, and the one
//!   mapping from errors to `tonic::Status`.
//! - [`service`]: the rules of every call (start positions, consumers, retractions, paging,
//!   filters) on domain types, free of any transport.
//! - [`auth`]: bearer tokens and the roles they grant, checked before any service runs.
//! - [`methods`]: the table of every gRPC method and who may call it.
//! - [`metrics`]: Prometheus metrics and their HTTP endpoint.
//! - [`traces`]: spans of every call exported over OTLP, continuing the caller's trace.
//! - [`server`]: wires store, services, health, reflection, TLS, auth and metrics together and
//!   serves them.
//! - [`config`]: command line and environment configuration.
//! - [`client`] and [`cli`]: the command-line client (`khabar ingest`, `get`, `list`, `retract`,
//!   `tail`, `consumers`, `health`, `completions`, `man`).
//! - [`pb`]: code generated from `proto/`.

pub mod api;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod domain;
pub mod error;
pub mod feed;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod methods;
pub mod metrics;
pub mod ninjs;
pub mod server;
pub mod service;
pub mod store;
pub mod stories;
pub mod traces;
pub mod wire;

/// Code generated from the protobuf definitions in `proto/`.
pub mod pb {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    /// The `khabar.v1` package.
    pub mod khabar {
        /// Version 1 of the khabar API.
        pub mod v1 {
            tonic::include_proto!("khabar.v1");
            include!(concat!(env!("OUT_DIR"), "/khabar.v1.serde.rs"));
        }
    }

    /// The server side of `khabar.v1.FeedService`, generated a second time so that feeds send
    /// [`crate::api::EncodedFeedEvent`] (stored article bytes as they are) where the generated
    /// code of [`khabar::v1`] would encode a `FeedEvent` from its fields.
    pub mod raw {
        tonic::include_proto!("raw/khabar.v1");
    }

    /// Encoded descriptors of every khabar proto file, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("khabar_descriptor");
}
