# syntax=docker/dockerfile:1
# kubemail's image: the operator (/manager, the entrypoint) and the mail server (/mailserver,
# which the operator's StatefulSets run as their command), static binaries on an empty base,
# non-root. `make image-tar` builds the same image without a container engine (hack/image);
# keep the two in step.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg REVISION=$(git rev-parse HEAD) -t kubemail/kubemail:dev .

FROM golang:1.26 AS build
ARG TARGETOS=linux
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
COPY mailserver/ mailserver/
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath \
      -ldflags "-X github.com/kubemail/kubemail/internal/version.Version=${VERSION}" \
      -o /out/ ./cmd/manager ./cmd/mailserver
# The user database (uid/gid 65532 "nonroot"), the root certificates outbound mail verifies
# TLS with, and a world-writable /tmp.
RUN mkdir -p /rootfs/etc/ssl/certs /rootfs/tmp \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && chmod 1777 /rootfs/tmp \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n' > /rootfs/etc/passwd \
 && printf 'root:x:0:\nnonroot:x:65532:\n' > /rootfs/etc/group

FROM scratch
ARG VERSION=dev
ARG REVISION=
LABEL org.opencontainers.image.title="kubemail" \
      org.opencontainers.image.description="kubemail operator (/manager) and mail server (/mailserver)" \
      org.opencontainers.image.source="https://github.com/kubemail/kubemail" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /rootfs/ /
COPY --from=build /out/manager /out/mailserver /
USER 65532:65532
ENTRYPOINT ["/manager"]
