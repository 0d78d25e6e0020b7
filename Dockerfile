# syntax=docker/dockerfile:1
# chaos-inference image. Two tags from one file:
#   docker build --target v1 -t chaos-inference:v1 .    # healthy (CHAOS_PROFILE=none)
#   docker build --target v2 -t chaos-inference:v2 .    # the course's v2 (CHAOS_PROFILE=v2)
# Any CHAOS_* variable still overrides at run time.

ARG RUST_VERSION=1.95
ARG ORT_VERSION=1.32.0

# --- dependency cache: cargo-chef builds only the dependencies while Cargo.lock is unchanged.
FROM rust:${RUST_VERSION}-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
# The debug info (most of the binary's size) goes to a file of its own, linked by name, so the
# image stays small and a crash can still be symbolised: see the debug-symbols target below.
RUN cargo build --release --locked --bin chaos-inference \
    && objcopy --only-keep-debug target/release/chaos-inference /chaos-inference.debug \
    && objcopy --strip-debug --strip-unneeded --add-gnu-debuglink=/chaos-inference.debug \
        target/release/chaos-inference /chaos-inference

# --- ONNX Runtime from the pinned PyPI wheel, by the same script as a local checkout.
FROM python:3.11-slim-bookworm AS onnxruntime
ARG ORT_VERSION
COPY scripts/fetch-onnxruntime.sh /fetch-onnxruntime.sh
RUN ORT_VERSION=${ORT_VERSION} /fetch-onnxruntime.sh /ort

# --- runtime. `ldd` shows the binary needs only glibc and libgcc_s, and libonnxruntime.so also
# libstdc++: distroless `cc` is exactly glibc, libgcc, libstdc++ (and CA certificates, tzdata),
# with no shell and no package manager, and its `nonroot` user is 65532.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
ARG ORT_VERSION
LABEL org.opencontainers.image.title="chaos-inference" \
      org.opencontainers.image.description="ONNX inference server with scheduled, observable faults for Kubernetes probes, restarts and rollouts" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"
COPY --from=onnxruntime /ort/libonnxruntime.so.${ORT_VERSION} /usr/local/lib/libonnxruntime.so
COPY --from=builder /chaos-inference /usr/local/bin/chaos-inference
# No BIND here: the server listens on 0.0.0.0:8000 unless told, and a timeline file as its
# profile (the stand-in) takes the application's port only when BIND is not set.
ENV ORT_DYLIB_PATH=/usr/local/lib/libonnxruntime.so \
    LOG_FORMAT=json
USER 65532:65532
EXPOSE 8000 8001
HEALTHCHECK --interval=10s --timeout=2s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/chaos-inference", "probe", "livez"]
ENTRYPOINT ["/usr/local/bin/chaos-inference"]
CMD ["serve"]

# The separated debug info, for symbolised crash reports (gdb finds it by the binary's
# debuglink when both sit in one folder):
#   docker build --target debug-symbols --output type=local,dest=. .
FROM scratch AS debug-symbols
COPY --from=builder /chaos-inference.debug /chaos-inference.debug

FROM runtime AS v2
ENV CHAOS_PROFILE=v2

# The last stage is the default target: v1, healthy.
FROM runtime AS v1
ENV CHAOS_PROFILE=none
