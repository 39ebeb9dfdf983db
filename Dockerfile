# EdgePlane control plane image. The CLI runs TypeScript through tsx (a runtime dependency), so
# the image needs no build stage; better-sqlite3 compiles against the image's toolchain.
FROM node:20-bookworm AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production \
    EDGEPLANE_DATA_DIR=/data \
    EDGEPLANE_HTTP_HOST=0.0.0.0 \
    EDGEPLANE_MQTT_HOST=0.0.0.0
COPY --from=deps /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY bin ./bin
COPY cli ./cli
COPY shared ./shared
COPY broker ./broker
COPY api ./api
COPY workers ./workers
COPY edge-agent ./edge-agent
COPY simulator ./simulator
COPY web ./web
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080 1883 8083
ENTRYPOINT ["node", "bin/edgeplane.js"]
CMD ["start"]
