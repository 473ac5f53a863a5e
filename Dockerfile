# syntax=docker/dockerfile:1
#
# courier container image: a release build on the Rust toolchain image, run on Debian slim.
#
#   docker build -t courier:dev .
#   docker run --rm -p 9464:9464 -v "$PWD/my-config:/etc/courier:ro" \
#       -e HOOK_SECRET=whsec_... courier:dev
#
# The configuration is mounted at /etc/courier (courier.toml inside it); secrets are given as
# environment variables and referenced from the file as ${NAME}. See docs/operations.md.
# The image listens on 0.0.0.0:9464 (COURIER__SERVER__LISTEN below) for /metrics, /healthz
# and /readyz.

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------------------------
# Build stage: librdkafka is compiled from source by rdkafka-sys (its bundled copy), which needs
# a C toolchain, make, pkg-config and the OpenSSL and zlib headers (features "ssl" and libz).
# ---------------------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS build

# Package versions are not pinned (hadolint DL3008): bookworm only ships security fixes, and a
# pinned version disappears from the archive as soon as one supersedes it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential \
        pkg-config \
        libssl-dev \
        zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# The cache mounts keep the crate registry and the target directory between builds (BuildKit);
# the binary is copied out of the cached target directory so the next stage can take it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin courier \
    && install -m 0755 target/release/courier /usr/local/bin/courier

# ---------------------------------------------------------------------------------------------
# Runtime stage: the binary links librdkafka statically and OpenSSL (libssl3) and zlib
# dynamically; ca-certificates lets it verify TLS brokers and HTTPS destinations.
# ---------------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates \
        libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 courier \
    && useradd --system --uid 10001 --gid courier --home-dir /var/lib/courier \
        --no-create-home --shell /usr/sbin/nologin courier \
    && mkdir -p /etc/courier /var/lib/courier \
    && chown courier:courier /var/lib/courier

COPY --from=build /usr/local/bin/courier /usr/local/bin/courier

# Inside a container the HTTP server must be reachable from outside the container (probes,
# Prometheus): listen on every interface. A value in the mounted file is overridden by this
# variable; set COURIER__SERVER__LISTEN yourself to change it.
ENV COURIER__SERVER__LISTEN=0.0.0.0:9464

USER 10001:10001
WORKDIR /var/lib/courier
EXPOSE 9464

# No curl in the image: bash's /dev/tcp sends `GET /healthz` and the first line of the answer
# must be a 200. (Kubernetes ignores HEALTHCHECK; its probes are in deploy/kubernetes/.)
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9464 && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

ENTRYPOINT ["courier"]
CMD ["run", "--config", "/etc/courier/courier.toml"]
