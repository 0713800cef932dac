# Gatehouse: a static binary on a distroless base, running as a non-root
# user. Build: docker build -t gatehouse .
# The base images can be swapped for a mirror's copies with
# --build-arg GO_IMAGE=... and --build-arg RUNTIME_IMAGE=...
ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot
FROM ${GO_IMAGE} AS build
# Where modules come from (a company's module proxy, say).
ARG GOPROXY=https://proxy.golang.org,direct
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO off: a static binary that needs no C library at run time.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/gatehouse . \
 && mkdir -p /out/data

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/gatehouse /usr/local/bin/gatehouse
# The data directory (keys, certificates, the embedded store) belongs to
# the unprivileged user; mount a volume here to keep it.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV GATEHOUSE_DATA=/data \
    GATEHOUSE_ADDR=:8443
EXPOSE 8443
# Healthy while the portal answers on its own certificate ("gatehouse
# health"). It is a liveness check: during a store outage the portal stays
# healthy and answers 503 until the store is back. Configure the portal
# with GATEHOUSE_* variables rather than serve flags, so that the check
# finds the same address and certificate.
HEALTHCHECK --interval=15s --timeout=6s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/gatehouse", "health"]
VOLUME ["/data"]
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["serve"]
