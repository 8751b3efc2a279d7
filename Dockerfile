# syntax=docker/dockerfile:1
# Build: compile TypeScript with every dependency; run: production dependencies only, non-root.
FROM node:20-bookworm-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production TESSERA_CONFIG=/etc/tessera/config.yaml
WORKDIR /app
# libsofthsm2 is only for trying the PKCS#11 provider; a real HSM mounts its own module.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
  && groupadd --system --gid 10001 tessera && useradd --system --uid 10001 --gid tessera --home /var/lib/tessera tessera \
  && mkdir -p /var/lib/tessera /etc/tessera/policies && chown tessera:tessera /var/lib/tessera
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY policies /etc/tessera/policies
USER 10001:10001
EXPOSE 8080
# Config and policies are mounted at /etc/tessera; local keys live in the /var/lib/tessera volume.
VOLUME ["/var/lib/tessera"]
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["serve"]
