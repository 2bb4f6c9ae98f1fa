# hookbench's container image, for `hookbench kube` (Kubernetes Indexed Jobs) and any other
# runner. Multi-stage: the release binary built in the Rust image, run from a small Debian image
# as a non-root user.
#
#   docker build -t registry.example/hookbench:0.1 .
#   docker run --rm registry.example/hookbench:0.1 run scenarios/quickstart.yaml --iterations 5

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && for b in engine protocol; do echo 'fn main() {}' > benches/$b.rs; done \
    && cargo build --release --locked --bin hookbench || true
COPY . .
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin hookbench \
    && strip target/release/hookbench

FROM debian:bookworm-slim
# CA certificates for HTTPS targets; nothing else: rustls, no OpenSSL.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 hookbench \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin hookbench
COPY --from=build /src/target/release/hookbench /usr/local/bin/hookbench
COPY --from=build /src/scenarios /opt/hookbench/scenarios
COPY --from=build /src/schemas /opt/hookbench/schemas
WORKDIR /opt/hookbench
USER 10001:10001
# Live metrics of `run --metrics-listen 0.0.0.0:9464`.
EXPOSE 9464
ENTRYPOINT ["hookbench"]
CMD ["--help"]
