# digestd: build with the same CMake as scripts/test.sh, run on Debian 12 slim.
FROM debian:12 AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libuv1-dev libcurl4-openssl-dev libjson-c-dev \
      libhiredis-dev libssl-dev libcmocka-dev node-llhttp \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY deps deps
COPY lib lib
COPY src src
COPY cmake cmake
COPY web web
COPY tests tests
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
    && cmake --build build -j"$(nproc)" --target digestd digestctl \
    && strip build/digestd build/digestctl

FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      libuv1 libcurl4 libjson-c5 libhiredis0.14 libssl3 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home digestd
COPY --from=build /src/build/digestd /usr/local/bin/digestd
# For operators: kubectl exec … digestctl stats (the container's REDIS_URL and DIGEST_PREFIX).
COPY --from=build /src/build/digestctl /usr/local/bin/digestctl
USER digestd
ENV DIGEST_LISTEN=0.0.0.0:3978
EXPOSE 3978
HEALTHCHECK --interval=10s --timeout=2s --retries=3 \
  CMD curl -fs http://127.0.0.1:3978/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/digestd"]
