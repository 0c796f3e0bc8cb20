# syntax=docker/dockerfile:1
ARG GO_VERSION=1.26
ARG BASE_IMAGE=ci_base:latest

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS Build
ARG GO_VERSION=9.9
RUN go build -o /out/tool ./cmd/tool

FROM build AS test
RUN go test ./...

from ${BASE_IMAGE}
COPY --from=build /out/tool /usr/local/bin/tool
