# syntax=docker/dockerfile:1
# Tessera image: Node.js 24 LTS (Debian bookworm, slim), runs as uid 10001, holds the compiled
# package (dist/) and its production dependencies only — no TypeScript sources, no dev tools.
#
# Build stage: compile, pack exactly what npm would publish, then install that package with
# production dependencies only (pinned by the lockfile) into an empty /app. test/integration/
# runtime-package.test.ts reproduces these steps and runs the result as a non-root user.
FROM node:24-bookworm-slim AS build
WORKDIR /src
# pkcs11js is a native addon: it compiles here, never in the runtime image.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
# npm ci runs `prepare`, which compiles src/ to dist/: the sources come first.
COPY . .
RUN npm ci && npm pack --pack-destination /tmp/pack \
  && mkdir /app && tar -xzf /tmp/pack/tessera-sts-*.tgz -C /app --strip-components=1 \
  && cp package-lock.json /app/ && cd /app && npm pkg delete scripts.prepare && npm ci --omit=dev && npm cache clean --force \
  && rm -f /app/package-lock.json

FROM node:24-bookworm-slim
ENV NODE_ENV=production TESSERA_CONFIG=/etc/tessera/config.yaml
# PKCS#11: the image ships no module. Mount your HSM vendor's module (built for glibc, e.g.
# /opt/hsm/lib/libvendorpkcs11.so) and set keys.module to its path; deploy/overlays/pkcs11 shows
# how. To try PKCS#11 with SoftHSM2 instead, derive an image that installs the softhsm2 package
# (module: /usr/lib/softhsm/libsofthsm2.so) and mounts its token directory.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
  && groupadd --system --gid 10001 tessera && useradd --system --uid 10001 --gid tessera --home-dir /var/lib/tessera --shell /usr/sbin/nologin tessera \
  && mkdir -p /var/lib/tessera/keys /etc/tessera/policies && chown -R 10001:10001 /var/lib/tessera && chmod 0700 /var/lib/tessera/keys
# Root-owned and read-only to the broker: the process can change neither its code nor its config.
COPY --from=build /app /app
COPY policies /etc/tessera/policies
RUN ln -s "/app/$(node -p "require('/app/package.json').bin.tessera")" /usr/local/bin/tessera
USER 10001:10001
WORKDIR /var/lib/tessera
# 8443: token endpoint (TLS), 8080: public discovery/JWKS listener, 9090: probes and metrics.
EXPOSE 8443 8080 9090
# Config and policies are mounted at /etc/tessera; local keys (when not in an HSM) live in /var/lib/tessera/keys.
VOLUME ["/var/lib/tessera"]
ENTRYPOINT ["tessera"]
CMD ["serve"]
