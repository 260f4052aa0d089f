# syntax=docker/dockerfile:1
# The sync sidecar: built with the same toolchain as development (rustc 1.95), run on a slim
# Debian of the same release, so the binary's glibc needs are met.
# Build from the repository root: docker build -f docker/sidecar.Dockerfile .

FROM rust:1.95.0-slim-bookworm AS build
# jemalloc, the sidecar's allocator, is built from source with `make`, which the slim image lacks.
RUN apt-get update && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# How SQLite is compiled (docs/performance.md, "SQLite's build options").
COPY .cargo ./.cargo
COPY sidecar ./sidecar
# The other workspace member (the load benchmark's driver): cargo reads every member's manifest
# even when it builds one package.
COPY bench/loadgen ./bench/loadgen
# The cache mounts keep the crate registry and compiled dependencies between builds; the binary
# is copied out because the target folder is not part of the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p anki-sidecar \
    && install -m 0755 target/release/anki-sidecar /usr/local/bin/anki-sidecar

FROM debian:12.11-slim
# A fixed uid, so that ownership of the data volume survives image rebuilds.
RUN groupadd --system --gid 10001 sidecar \
    && useradd --system --uid 10001 --gid sidecar --home-dir /var/lib/anki-sidecar \
        --shell /usr/sbin/nologin sidecar \
    && install -d -o sidecar -g sidecar -m 0750 /var/lib/anki-sidecar
COPY --from=build /usr/local/bin/anki-sidecar /usr/local/bin/anki-sidecar
ENV SIDECAR_PUBLIC_ADDR=0.0.0.0:8080 \
    SIDECAR_INTERNAL_ADDR=0.0.0.0:8081 \
    SIDECAR_DATA_DIR=/var/lib/anki-sidecar
USER sidecar
WORKDIR /var/lib/anki-sidecar
EXPOSE 8080 8081
ENTRYPOINT ["anki-sidecar"]
CMD ["serve"]
