# syntax=docker/dockerfile:1
# One image, three services: the command picks it (router | control-plane | node-agent).
#   docker build -t icp:dev .
#   docker build --build-arg ONNXRUNTIME_NODE_INSTALL=cuda12 -t icp:cuda .   # onnxruntime-node's CUDA 12 EP
#   docker build --target sim -t icp-sim:dev .                                # + test/sim engines (laptop compose)
# Runs as the non-root `node` user; no secrets are baked in (tokens come from the environment at
# run time); the entrypoint is exec form, so node itself is PID 1 and gets SIGTERM (graceful drain).

# Node 24 LTS, pinned to the exact release the project's own `node` devDependency pins (tests and
# CI run on it): test/deploy/dockerfile.test.ts checks that the two agree.
ARG NODE_IMAGE=node:24.21.0-bookworm-slim

# ---- dependencies: production only, in a throwaway stage ----
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
# skip (default, as in .npmrc): onnxruntime-node's bundled CPU binaries only.
# cuda12: also download the CUDA 12 execution provider (router.embeddings.models[].executionProvider: cuda).
ARG ONNXRUNTIME_NODE_INSTALL=skip
ENV ONNXRUNTIME_NODE_INSTALL=${ONNXRUNTIME_NODE_INSTALL}
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# ---- build: TypeScript -> dist/ (plain JavaScript), with the dev dependencies ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc tsconfig.json tsconfig.build.json ./
RUN npm ci --no-audit --no-fund
COPY cli ./cli
COPY common ./common
COPY router ./router
COPY node-agent ./node-agent
COPY control-plane ./control-plane
COPY proto ./proto
RUN npm run build

# ---- application: compiled JavaScript + production node_modules, non-root ----
FROM ${NODE_IMAGE} AS app
ENV NODE_ENV=production \
    ICP_CONFIG=/etc/icp/config.yaml \
    ICP_HEALTH_URL=http://127.0.0.1:8080/healthz
WORKDIR /app
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --chown=root:root package.json package-lock.json ./
COPY --from=build --chown=root:root /app/dist ./dist
# Read at run time from the install root (common/paths.ts): the gRPC contract and the dashboard.
COPY --chown=root:root proto/inference ./proto/inference
COPY --chown=root:root control-plane/ui ./control-plane/ui
COPY --chown=root:root models ./models
COPY --chown=root:root config ./config
COPY --chown=root:root deploy/docker/healthcheck.mjs deploy/docker/render-config.mjs ./deploy/docker/
# Code is owned by root and read-only to the service user. /var/lib/icp is the one directory it
# writes (controlPlane.stateFile, capacity history): a named volume mounted there starts with this
# owner (docker-compose.gpu.yml); Kubernetes gives the PVC to fsGroup 1000 instead.
RUN install -d -o node -g node -m 0700 /var/lib/icp
USER node
EXPOSE 8080 8081 50051 9101
# Each service's own liveness endpoint; ICP_HEALTH_URL says which (compose and k8s set it per service).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD ["node", "/app/deploy/docker/healthcheck.mjs"]
# Plain node on compiled JavaScript: no loader, no esbuild child, no transform cache to warm.
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["router", "--config", "/etc/icp/config.yaml"]

# ---- laptop: the simulated engines as well (docker-compose.sim.yml builds this target) ----
# The simulators are test code in TypeScript: this target alone adds tsx (a dev tool) to run them.
FROM app AS sim
USER root
COPY --from=build --chown=root:root /app/node_modules/tsx ./node_modules/tsx
COPY --from=build --chown=root:root /app/node_modules/esbuild ./node_modules/esbuild
COPY --from=build --chown=root:root /app/node_modules/@esbuild ./node_modules/@esbuild
COPY --chown=root:root tsconfig.json ./
COPY --chown=root:root test/sim ./test/sim
# The simulators import these two common/ modules from source.
COPY --chown=root:root common/process.ts common/logger.ts ./common/
USER node

# ---- default target: the production image ----
FROM app AS runtime
USER node
