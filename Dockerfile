# EdgePlane control plane image: compiled JavaScript (dist/) on production dependencies only.
# Three stages: production node_modules (better-sqlite3 compiles against the toolchain here), a
# build with every dependency (tsc → dist/, plus the standalone agent bundle), and the runtime,
# which holds no TypeScript sources and no devDependencies.
FROM node:20-bookworm AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# bin/prepare.js is npm's prepare hook: without typescript it skips the build.
COPY bin ./bin
# koffi (glibc's malloc_trim, shared/malloc-trim.ts) ships prebuilt binaries for ~18 platforms
# (26 MB); the image keeps its own (~1.5 MB).
RUN npm ci --omit=dev --no-audit --no-fund \
 && find node_modules/koffi/build/koffi -mindepth 1 -maxdepth 1 ! -name "$(node -p 'process.platform + "_" + process.arch')" -exec rm -rf {} +

FROM node:20-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY bin ./bin
# The sources are not copied yet, so prepare skips here and this layer caches across edits.
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY cli ./cli
COPY shared ./shared
COPY broker ./broker
COPY api ./api
COPY workers ./workers
COPY edge-agent ./edge-agent
COPY simulator ./simulator
RUN npm run build

FROM node:20-bookworm-slim
WORKDIR /app
# EDGEPLANE_RUN=dist: the bin runs dist/ without looking for sources (there are none here).
ENV NODE_ENV=production \
    EDGEPLANE_RUN=dist \
    EDGEPLANE_DATA_DIR=/data \
    EDGEPLANE_HTTP_HOST=0.0.0.0 \
    EDGEPLANE_MQTT_HOST=0.0.0.0
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY --from=build /app/dist ./dist
# Read at run time beside the code: the console's sources (bundled in memory on first request)
# and the demo scenario.
COPY web ./web
COPY simulator/scenarios ./simulator/scenarios
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080 1883 8083
ENTRYPOINT ["node", "bin/edgeplane.js"]
CMD ["start"]
