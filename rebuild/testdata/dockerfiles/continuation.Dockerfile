ARG REGISTRY=registry.example.com \
    NAMESPACE=ci
# The base image comes from our own registry.
FROM \
  # a comment inside a continuation is dropped
  ${REGISTRY}/${NAMESPACE}/ci_base:nightly \

  AS base
RUN apt-get install -y \
      curl \
      git
