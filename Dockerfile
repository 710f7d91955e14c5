# khabar container image.
#
#   docker build -t khabar .                     # compiles khabar in the `compile` stage
#   docker run -d -p 127.0.0.1:50051:50051 -v khabar-data:/data khabar
#
# Needs BuildKit (the default builder of current Docker releases), which builds only the stages
# the target uses. The runtime stage can also take a binary compiled elsewhere, with
# `--build-arg BINARY_FROM=host` and a build context holding that binary as `khabar` and an empty
# `data/` directory; the final stage is then the same, only the compiler's output differs.
# tests/container.rs builds the image that way.

ARG RUST_IMAGE=rust:1.95-slim-bookworm
# distroless/cc: glibc, libgcc and CA certificates, a non-root user (65532), no shell or package
# manager. The binary is compiled against the same Debian 12 glibc.
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
ARG BINARY_FROM=compile

FROM ${RUST_IMAGE} AS compile
WORKDIR /src
# Dependencies first, so that changing the sources does not refetch the crates.
COPY Cargo.toml Cargo.lock ./
RUN cargo fetch --locked
COPY build.rs ./
COPY proto proto
COPY src src
RUN cargo build --release --locked --bin khabar \
 && mkdir -p /out/data \
 && cp target/release/khabar /out/khabar

FROM scratch AS host
COPY khabar /out/khabar
COPY data /out/data

FROM ${BINARY_FROM} AS binary

FROM ${RUNTIME_IMAGE} AS runtime
COPY --from=binary /out/khabar /usr/local/bin/khabar
# The volume starts as a copy of this directory, so the server's user can write to it.
COPY --from=binary --chown=65532:65532 /out/data /data
ENV KHABAR_LISTEN=0.0.0.0:50051 \
    KHABAR_DATA_DIR=/data \
    KHABAR_LOG_FORMAT=json
USER 65532:65532
VOLUME ["/data"]
EXPOSE 50051
# The binary checks itself over grpc.health.v1: no shell or curl needed in the image.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/khabar", "health", "--timeout-ms", "3000"]
# SIGTERM starts a graceful shutdown (--shutdown-grace-ms, 10 s by default): give `docker stop`
# and orchestrators a longer timeout than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/khabar"]
CMD ["serve"]
