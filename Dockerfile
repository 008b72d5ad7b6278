# syntax=docker/dockerfile:1
#
# tokend image: a static binary on distroless, running as a non-root user.
#
#   docker build -t tokend .
#   docker run --rm -p 127.0.0.1:8080:8080 \
#     -v "$PWD/tokend.yaml:/etc/tokend/tokend.yaml:ro" \
#     -e TOKEND_ADDR=0.0.0.0:8080 -e TOKEND_REDIS_URL=redis://redis:6379/0 tokend
#
# compose.yaml runs it with Redis. The image holds no configuration and no
# keys: mount them (see compose.yaml and deploy/tokend.compose.yaml).

# ---- build ------------------------------------------------------------------
FROM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false

# Modules first, in their own layer: it stays cached until go.mod or go.sum
# change.
COPY go.mod go.sum ./
RUN go mod download && go mod verify

COPY . .
RUN --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/tokend . \
 && /out/tokend help >/dev/null

# ---- run --------------------------------------------------------------------
# distroless static: no shell, no package manager; has CA certificates, tzdata
# and /etc/passwd with nonroot (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tokend /tokend
USER 65532:65532
EXPOSE 8080
# No shell in the image, so the health check is the binary itself: exit 0 when
# http://127.0.0.1:8080/readyz (Redis reachable) answers 200. It assumes the
# default port; with another TOKEND_ADDR override it (compose.yaml does its own).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/tokend", "healthcheck"]
ENTRYPOINT ["/tokend"]
CMD ["serve", "--config", "/etc/tokend/tokend.yaml"]
