# syntax=docker/dockerfile:1
# kowai's image: one static binary on a distroless base, run as a fixed
# non-root user, every byte of state under /data (a volume), so the root
# filesystem can be mounted read-only.
#
#   make image                      # stamps the version and commit like make build
#   docker run -p 127.0.0.1:8080:8080 -v kowai-data:/data kowai:dev
#
# The build stage compiles with the Kubernetes cluster provider (-tags k8s) so
# that one image serves every provider; BUILD_TAGS="" builds it without.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
ARG BUILD_TAGS=k8s
RUN go build -tags "${BUILD_TAGS}" -ldflags "-X main.version=${VERSION} -X main.commit=${COMMIT}" -o /out/kowai ./cmd/kowai \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot AS runtime
ARG VERSION=dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="kowai" \
      org.opencontainers.image.description="Actor-model runtime for AI agents: gateway and actor cluster node" \
      org.opencontainers.image.source="https://github.com/kowai/kowai" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
COPY --from=build /out/kowai /usr/local/bin/kowai
COPY --from=build --chown=65532:65532 /out/data /data
# Inside a container the gateway and the metrics listener must be reachable
# from outside it; publish them on the host's loopback (-p 127.0.0.1:...) or
# put a proxy in front.
ENV KOWAI_HTTP_ADDR=0.0.0.0:8080 \
    KOWAI_METRICS_ADDR=0.0.0.0:9090 \
    KOWAI_DATA_DIR=/data
USER 65532:65532
VOLUME ["/data"]
# 8080 gateway, 9090 metrics, 7000 actor remoting (KOWAI_CLUSTER_ADDR=<host>:7000).
EXPOSE 8080 9090 7000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/kowai", "health", "--timeout", "4s"]
ENTRYPOINT ["/usr/local/bin/kowai"]
CMD ["serve"]
