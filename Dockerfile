# khabar container image.
#
#   docker build -t khabar .
#   docker run -d -p 127.0.0.1:50051:50051 -v khabar-data:/data khabar
#
# Stages, in this order:
#   data-dir            an empty directory that becomes /data
#   runtime-base        the base image and every runtime setting (user, volume, port, environment,
#                       health check, stop signal, entrypoint); both final stages derive from it
#   runtime-from-host   runtime-base plus a khabar binary compiled outside Docker, taken from a build
#                       context that holds it as `khabar`:
#                         docker build --target runtime-from-host -f Dockerfile -t khabar DIR
#                       (tests/it/container.rs builds and runs this target)
#   compile             compiles khabar with cargo
#   runtime             runtime-base plus the binary from compile: the default target
#
# BuildKit (the default builder of current Docker) builds only the stages the target needs. The
# legacy builder builds every stage before the target, which is why the stages are in this order:
# --target runtime-from-host works with it too, but the default target needs BuildKit (with the
# legacy builder it would look for a `khabar` binary in the build context).

ARG RUST_IMAGE=rust:1.95-slim-bookworm
# distroless/cc: glibc, libgcc, CA certificates and a non-root user (nonroot, 65532), without a
# shell or package manager, so the image holds little besides khabar. The binary is compiled on
# Debian 12 (bookworm) and runs against the same glibc. debian:bookworm-slim also works as
# RUNTIME_IMAGE (it has a shell, for debugging), as does any glibc image: the user is set by id.
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM scratch AS data-dir
WORKDIR /data

FROM ${RUNTIME_IMAGE} AS runtime-base
# /data owned by the runtime user: a fresh named volume starts as a copy of it, ownership included,
# so the server can write to it. (The base has no shell to mkdir and chown with, hence the copy.)
COPY --from=data-dir --chown=65532:65532 /data /data
ENV KHABAR_LISTEN=0.0.0.0:50051 \
    KHABAR_DATA_DIR=/data
USER 65532:65532
VOLUME ["/data"]
EXPOSE 50051
# The binary asks the server itself over grpc.health.v1 (KHABAR_SERVER, http://127.0.0.1:50051 by
# default): no shell or curl in the image.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
  CMD ["khabar", "health", "--timeout-ms", "3000"]
# SIGTERM starts a graceful shutdown that takes up to KHABAR_SHUTDOWN_GRACE_MS (10 s by default):
# give `docker stop` and orchestrators a longer timeout than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["khabar"]
CMD ["serve"]

FROM runtime-base AS runtime-from-host
COPY khabar /usr/local/bin/khabar

FROM ${RUST_IMAGE} AS compile
WORKDIR /src
# Dependencies first, compiled against stub sources: this layer is reused until Cargo.toml or
# Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && echo 'fn main() {}' > build.rs \
 && cargo build --release --locked --bin khabar \
 && rm -rf src build.rs target/release/.fingerprint/khabar-*
COPY build.rs ./
COPY proto proto
COPY src src
RUN cargo build --release --locked --bin khabar \
 && cp target/release/khabar /usr/local/bin/khabar

FROM runtime-base AS runtime
COPY --from=compile /usr/local/bin/khabar /usr/local/bin/khabar
