# Multi-stage build: a static pmsbridge binary on a distroless base.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/physitrack/pmsbridge/internal/cli.Version=${VERSION}" -o /out/pmsbridge ./cmd/pmsbridge

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pmsbridge /usr/local/bin/pmsbridge
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/pmsbridge"]
CMD ["run"]
