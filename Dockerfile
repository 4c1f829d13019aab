# otel-audit-agent as a container image, to run as a sidecar. From the repository root:
#
#   docker build -t otel-audit-agent:0.1.0 .
#
# Three stages on one pinned base: `build` compiles the TypeScript, `prod-deps` installs the
# production dependencies alone, and the final stage holds only what runs: /app (dist/, proto/,
# config/, package.json, node_modules/), the config /etc/audit-agent/config.yaml and the data
# volume /var/lib/audit-agent. It runs as UID 10001 and works with a read-only root filesystem.
# docs/container.md describes the image; scripts/image-build-check.sh performs these steps
# without Docker, from this file, and runs the result.

# Node.js 22 LTS on Debian 12 "bookworm", slim. The tag pins the Node.js version, the digest the
# image (multi-platform index). Debian's glibc matches classic-level's prebuilt LevelDB binding,
# and every stage uses the same base so the runtime is exactly what was built and checked.
# To update: pick a newer tag and resolve its digest with
#   docker buildx imagetools inspect node:22.x.y-bookworm-slim
ARG NODE_IMAGE=node:22.22.2-bookworm-slim@sha256:9f6d5975c7dca860947d3915877f85607946403fc55349f39b4bc3688448bb6e

# ---- build: every dependency, then tsc into dist/ ----
FROM ${NODE_IMAGE} AS build
ENV NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the package's own `prepare` script is the build, which needs the sources
# copied below; no dependency needs an install script for tsc.
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY agent/ ./agent/
RUN npm run build \
 && rm -f dist/.tsbuildinfo \
 && chmod 0755 dist/agent/cli/main.js

# ---- prod-deps: production dependencies only ----
FROM ${NODE_IMAGE} AS prod-deps
ENV NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
WORKDIR /prod
COPY package.json package-lock.json ./
# No install scripts: classic-level ships prebuilt bindings (its install script only looks for
# them), protobufjs's postinstall only prints version-scheme warnings.
RUN npm ci --omit=dev --ignore-scripts
# Prove on the target platform that the LevelDB binding loads and works without them.
RUN node --input-type=module -e "import { ClassicLevel } from 'classic-level'; import { mkdtempSync, rmSync } from 'node:fs'; import { tmpdir } from 'node:os'; import { join } from 'node:path'; const dir = mkdtempSync(join(tmpdir(), 'classic-level-')); const db = new ClassicLevel(dir); await db.put('k', 'v'); if ((await db.get('k')) !== 'v') throw new Error('classic-level read back the wrong value'); await db.close(); rmSync(dir, { recursive: true }); console.log('classic-level loads: ' + process.platform + '-' + process.arch);"

# ---- runtime ----
FROM ${NODE_IMAGE} AS runtime
ARG NODE_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="otel-audit-agent" \
      org.opencontainers.image.description="OpenTelemetry Collector-compatible audit sidecar: OTLP logs in, hash-chained durable audit records out" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${NODE_IMAGE}"
ENV NODE_ENV=production
# A fixed numeric user (Kubernetes runAsNonRoot checks the number), the data directory it owns,
# and the `audit-agent` command on PATH, where an npm global install would put it.
RUN groupadd --gid 10001 audit-agent \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin audit-agent \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/audit-agent \
 && ln -s /app/dist/agent/cli/main.js /usr/local/bin/audit-agent
WORKDIR /app
COPY --from=prod-deps /prod/node_modules ./node_modules/
COPY --from=build /src/dist ./dist/
COPY package.json ./
COPY proto/ ./proto/
COPY config/ ./config/
COPY config/container.yaml /etc/audit-agent/config.yaml
USER 10001:10001
# Relative paths (./data in config/default.yaml, keygen --out keys) land on the volume.
WORKDIR /var/lib/audit-agent
VOLUME /var/lib/audit-agent
# OTLP/gRPC, OTLP/HTTP, health_check, Prometheus metrics: all on 127.0.0.1 in the image's
# config (a sidecar shares its pod's network namespace); see docs/container.md to publish them.
EXPOSE 4317 4318 13133 8888
# The health_check extension's readiness (200 when healthy, 503 with reasons); slim images have
# no curl. It follows the port of AUDIT_AGENT_HEALTH_ENDPOINT when that is set.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "const port = (process.env.AUDIT_AGENT_HEALTH_ENDPOINT || '127.0.0.1:13133').split(':').pop(); fetch('http://127.0.0.1:' + port + '/', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1));"]
# SIGTERM: stop accepting, answer in-flight requests, drain exporters within --grace (30 s), exit 0.
STOPSIGNAL SIGTERM
# audit-agent is a `#!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=… node <V8 flags>` script: its
# allocator setting and flags apply here too (docs/container.md, "Memory and CPU").
ENTRYPOINT ["audit-agent"]
CMD ["run", "--config", "/etc/audit-agent/config.yaml"]
