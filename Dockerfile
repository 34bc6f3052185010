# Build: the release binary. Runtime: Debian slim with libonnxruntime from the pinned wheel.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin stylecast

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates python3 python3-pip \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY scripts/install-ort.sh scripts/install-ort.sh
RUN bash scripts/install-ort.sh
COPY --from=build /src/target/release/stylecast /usr/local/bin/stylecast
COPY config config
COPY onnx onnx
ENV ORT_DYLIB_PATH=/app/.ort/libonnxruntime.so
EXPOSE 8080
CMD ["stylecast", "serve"]
