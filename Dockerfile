# syntax=docker/dockerfile:1
# One image with the three Qualify services; the Helm chart's Deployments and
# migration Jobs pick the binary with their command:
#   /usr/local/bin/qualify-scoring    [serve|migrate]   gRPC 50051
#   /usr/local/bin/qualify-acceptance [serve|migrate]   gRPC 50052
#   /usr/local/bin/qualify-metrics    [serve|migrate]   gRPC 50053
#
#   docker build -t ghcr.io/qualify/qualify:0.1.0 .

# ---- build -----------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
# The whole workspace: Cargo resolves every member even when building three
# packages. Protos compile with protox (pure Rust), so no protoc is needed.
COPY . .
# The caches keep the registry and incremental target between builds; the
# binaries are copied out of the cached target in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p qualify-scoring -p qualify-acceptance -p qualify-metrics \
 && mkdir -p /out \
 && cp target/release/qualify-scoring target/release/qualify-acceptance target/release/qualify-metrics /out/

# ---- runtime ---------------------------------------------------------------
# distroless/cc: glibc and libgcc only, no shell, runs as nonroot (65532).
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="qualify" \
      org.opencontainers.image.description="Qualify lead scoring, opportunity acceptance and funnel metrics gRPC services" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"
COPY --from=builder --chown=0:0 --chmod=0755 /out/ /usr/local/bin/
USER 65532:65532
EXPOSE 50051 50052 50053
# Default: scoring; the chart sets the command (binary and serve|migrate) itself.
ENTRYPOINT []
CMD ["/usr/local/bin/qualify-scoring", "serve"]
