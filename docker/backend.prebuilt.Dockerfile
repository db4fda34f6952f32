# The backend image from a static binary built on the host (no registry needed):
#   cargo build --release -p backend --target x86_64-unknown-linux-musl
#   cp target/x86_64-unknown-linux-musl/release/backend docker/backend
#   docker build -f docker/backend.prebuilt.Dockerfile -t telemetry-backend .
FROM scratch
COPY docker/backend /backend
COPY --chown=65532:65532 docker/data /data
USER 65532:65532
ENV HOST=0.0.0.0 PORT=8000 DB_PATH=/data/telemetry.db
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s CMD ["/backend", "--healthcheck"]
ENTRYPOINT ["/backend"]
