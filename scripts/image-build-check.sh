#!/usr/bin/env bash
# Builds the container image's contents without Docker and proves they run.
#
#   bash scripts/image-build-check.sh        # prints PASS or FAIL; exit 0 only on PASS
#   IMAGE_CHECK_KEEP=1 bash scripts/...      # keep the temporary directory for a look
#
# 1. scripts/dockerfile.mjs carries out the Dockerfile in a temporary directory: the build
#    context as Docker would send it (.dockerignore applied), each stage in its own directory
#    standing in for its "/", the build stages' RUN commands (npm ci, the tsc build, npm ci
#    --omit=dev --ignore-scripts, the classic-level load check) and every COPY as written, and
#    the final stage's user, data directory and `audit-agent` symlink.
# 2. It checks the final tree: compiled JS, proto/, config/, package.json, production
#    dependencies only, the image config at /etc/audit-agent/config.yaml.
# 3. It starts the final stage's ENTRYPOINT + CMD (`audit-agent run --config
#    /etc/audit-agent/config.yaml`, the command found on PATH in the stage's /usr/local/bin)
#    with the image's environment only, in the image's WORKDIR, as the image's USER, with every
#    filesystem read-only except the data volume (a private mount namespace; as root, or in a
#    user namespace, else chmod a-w as a weaker stand-in). Paths stay as in the image config:
#    AUDIT_AGENT_DATA_DIR points it at the stand-in for /var/lib/audit-agent, and the
#    AUDIT_AGENT_*_ENDPOINT variables give it free loopback ports.
# 4. It sends one OTLP/HTTP JSON audit record and sees it land in the file exporter's output,
#    checks the gRPC port, the metrics endpoint and the image's HEALTHCHECK command, sends
#    SIGTERM and expects exit 0, then runs `audit-agent verify` on the output with the
#    generated public key.
#
# What it cannot prove: the base image itself (the host's node and npm stand in for the
# image's; the versions are printed) and Docker's own behaviour. Needs bash, node, npm, curl
# and the npm registry (or a warm npm cache).
# shellcheck disable=SC2015 # `test && ok || fail`: ok always succeeds
# shellcheck disable=SC2016 # single-quoted JavaScript and sh -c scripts are meant literally
# shellcheck disable=SC2317 # cleanup runs from the EXIT trap
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STARTED=$SECONDS
WORK="$(mktemp -d "${TMPDIR:-/tmp}/audit-agent-image-check.XXXXXX")"
chmod 0755 "$WORK"
AGENT_PID=""
FAILURES=()

say() { printf '%s\n' "$*"; }
step() { printf '\n== %s\n' "$*"; }
ok() { printf '  ok    %s\n' "$*"; }
fail() {
  printf '  FAIL  %s\n' "$*"
  FAILURES+=("$*")
}
cleanup() {
  if [[ -n $AGENT_PID ]] && kill -0 "$AGENT_PID" 2>/dev/null; then kill -KILL "$AGENT_PID" 2>/dev/null || true; fi
  if [[ ${IMAGE_CHECK_KEEP:-0} == 1 ]]; then
    say "kept $WORK"
  else
    [[ ${SANDBOX:-} == chmod* ]] && chmod -R u+w "$WORK" 2>/dev/null
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
finish() {
  local elapsed=$((SECONDS - STARTED))
  echo
  if ((${#FAILURES[@]} == 0)); then
    say "image-build-check: PASS (${elapsed} s)"
    exit 0
  fi
  say "image-build-check: FAIL (${elapsed} s): ${#FAILURES[@]} problem(s)"
  for f in "${FAILURES[@]}"; do say "  - $f"; done
  exit 1
}
die() {
  fail "$*"
  if [[ -s $WORK/agent.log ]]; then
    say "--- agent log (last 30 lines)"
    tail -n 30 "$WORK/agent.log"
  fi
  finish
}
# image.json fields: `img EXPR` prints a JavaScript expression over the image description `i`.
img() {
  node -e 'const i = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const v = eval(process.argv[2]);
process.stdout.write(Array.isArray(v) ? v.join("\0") : typeof v === "string" ? v : JSON.stringify(v ?? null));' \
    "$WORK/image.json" "$1"
}

for tool in node npm curl; do command -v "$tool" >/dev/null || die "$tool is needed"; done

# ---- 1. build ----
step "build the image's stages from the Dockerfile (no Docker)"
BUILD_STARTED=$SECONDS
if ! node "$REPO/scripts/dockerfile.mjs" build --context "$REPO" --work "$WORK" >"$WORK/build.log" 2>&1; then
  tail -n 40 "$WORK/build.log"
  die "the image build failed (log above)"
fi
grep -E '^(\[|context:)' "$WORK/build.log" | sed 's/^/  /'
grep -E '^classic-level loads' "$WORK/build.log" | sed 's/^/  /' || true
ok "built in $((SECONDS - BUILD_STARTED)) s with node $(node --version) and npm $(npm --version) standing in for $(img i.from | sed 's/@sha256:.*//')"

R="$(img i.root)"
mapfile -d '' VOLUMES < <(img i.volumes)
((${#VOLUMES[@]} == 1)) || die "expected exactly one VOLUME, found ${#VOLUMES[@]}"
DATA="$R${VOLUMES[0]}"
WORKDIR_IMG="$(img i.workdir)"
mapfile -d '' ENTRYPOINT < <(img i.entrypoint)
mapfile -d '' CMD < <(img i.cmd)
mapfile -d '' IMAGE_ENV < <(img 'Object.entries(i.env).map(([k, v]) => `${k}=${v}`)')
USER_SPEC="$(img i.user)"
# USER as uid, gid and home, names looked up in the users and groups the final stage created.
read -r RUN_UID RUN_GID RUN_HOME < <(img '(() => {
  const [u, g] = i.user.split(":");
  const uid = /^\d+$/.test(u) ? Number(u) : i.users[u]?.uid;
  const entry = Object.values(i.users).find((x) => x.uid === uid);
  const gid = g === undefined ? (entry?.gid ?? uid) : /^\d+$/.test(g) ? Number(g) : i.groups[g];
  return `${uid} ${gid} ${entry?.home ?? "/"}`;
})()') || true # no trailing newline: read reports EOF
[[ $RUN_UID =~ ^[0-9]+$ && $RUN_GID =~ ^[0-9]+$ ]] || die "cannot resolve USER $(img i.user) to numeric ids"
say "  image: user ${USER_SPEC} (uid ${RUN_UID}, gid ${RUN_GID}), workdir ${WORKDIR_IMG}, volume ${VOLUMES[0]}, entrypoint ${ENTRYPOINT[*]}, cmd ${CMD[*]}"

# ---- 2. the final stage's contents ----
step "check the final stage's contents"
APP="$R/app"
[[ -x $APP/dist/agent/cli/main.js ]] && ok "dist/agent/cli/main.js is compiled and executable" || fail "no executable $APP/dist/agent/cli/main.js"
cmp -s "$REPO/package.json" "$APP/package.json" && ok "package.json" || fail "package.json missing or different in /app"
for proto in "$REPO"/proto/*.proto; do
  [[ -f $APP/proto/$(basename "$proto") ]] || fail "proto/$(basename "$proto") missing"
done
ok "proto/ ($(find "$APP/proto" -name '*.proto' | wc -l) files)"
cmp -s "$REPO/config/container.yaml" "$R/etc/audit-agent/config.yaml" &&
  ok "config/container.yaml is /etc/audit-agent/config.yaml" ||
  fail "/etc/audit-agent/config.yaml is not config/container.yaml"
[[ -f $APP/config/default.yaml ]] && ok "config/ shipped" || fail "config/ missing"
# Against the lockfile: every package npm marks dev-only absent, every production one present.
deps="$(node -e 'const { existsSync } = require("fs");
const [lockFile, app] = process.argv.slice(1);
const lock = JSON.parse(require("fs").readFileSync(lockFile, "utf8"));
const dev = [], missing = [];
let prod = 0;
for (const [path, p] of Object.entries(lock.packages)) {
  if (!path.startsWith("node_modules/")) continue;
  const here = existsSync(`${app}/${path}/package.json`);
  if (p.dev) { if (here) dev.push(path.slice(13)); }
  else if (!p.optional) { prod++; if (!here) missing.push(path.slice(13)); }
}
console.log(JSON.stringify({ dev, missing, prod }));' "$REPO/package-lock.json" "$APP")"
dev_present="$(node -p 'const d = JSON.parse(process.argv[1]).dev; d.length > 8 ? `${d.slice(0, 8).join(" ")} and ${d.length - 8} more` : d.join(" ")' "$deps")"
prod_missing="$(node -p 'JSON.parse(process.argv[1]).missing.join(" ")' "$deps")"
[[ -z $dev_present ]] && ok "no dev-only package from the lockfile in node_modules" || fail "dev-only packages in the image: $dev_present"
[[ -z $prod_missing ]] && ok "all $(node -p 'JSON.parse(process.argv[1]).prod' "$deps") production packages of the lockfile installed" || fail "production packages missing: $prod_missing"
stray="$(find "$APP" -path "$APP/node_modules" -prune -o \( -name '*.ts' -o -name '*.tsbuildinfo' \) -print | head -n 5 || true)"
[[ -z $stray ]] && ok "no TypeScript sources or build info" || fail "stray build files: $stray"
say "  /app is $(du -sh "$APP" | cut -f1) ($(du -sh "$APP/node_modules" | cut -f1) of it node_modules)"
if [[ $(id -u) == 0 ]]; then
  [[ $(stat -c %u "$DATA") == "$RUN_UID" ]] && ok "${VOLUMES[0]} is owned by uid $RUN_UID" || fail "${VOLUMES[0]} is not owned by uid $RUN_UID"
fi

# ---- 3. the entrypoint, as the container runs it ----
step "run ENTRYPOINT + CMD as the container would"
NODE_DIR="$(dirname "$(command -v node)")"
RUN_PATH="$R/usr/local/bin:$NODE_DIR:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
free_port() { node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'; }
HEALTH_PORT="$(free_port)"
RUN_ENV=(PATH="$RUN_PATH" HOME="$RUN_HOME" HOSTNAME=audit-agent-image-check "${IMAGE_ENV[@]}"
  AUDIT_AGENT_DATA_DIR="$DATA"
  AUDIT_AGENT_GRPC_ENDPOINT=127.0.0.1:0 AUDIT_AGENT_HTTP_ENDPOINT=127.0.0.1:0
  AUDIT_AGENT_METRICS_ENDPOINT=127.0.0.1:0 AUDIT_AGENT_HEALTH_ENDPOINT="127.0.0.1:$HEALTH_PORT")
in_image() { env -i "${RUN_ENV[@]}" "$@"; }

found="$(in_image sh -c "command -v ${ENTRYPOINT[0]@Q}" || true)"
[[ $found == "$R/usr/local/bin/${ENTRYPOINT[0]}" ]] &&
  ok "${ENTRYPOINT[0]} resolves on PATH to the stage's /usr/local/bin/${ENTRYPOINT[0]}" ||
  die "${ENTRYPOINT[0]} resolves to '${found}', not the image's /usr/local/bin/${ENTRYPOINT[0]}"
version="$(in_image "${ENTRYPOINT[@]}" --version 2>&1 || true)"
[[ $version == "$(node -p 'require(process.argv[1]).version' "$REPO/package.json")" ]] &&
  ok "${ENTRYPOINT[0]} --version: $version" || fail "${ENTRYPOINT[0]} --version printed '$version'"
# Absolute paths in CMD name files of the image: point them into the stage directory.
CMD_HERE=()
for arg in "${CMD[@]}"; do
  if [[ $arg == /* && -e $R$arg ]]; then CMD_HERE+=("$R$arg"); else CMD_HERE+=("$arg"); fi
done
CONFIG_HERE="$R/etc/audit-agent/config.yaml"
if out="$(env -i PATH="$RUN_PATH" "${IMAGE_ENV[@]}" "${ENTRYPOINT[@]}" validate --config "$CONFIG_HERE" 2>&1)"; then
  ok "validate: ${out#"$CONFIG_HERE": }"
else
  fail "the image config does not validate: $out"
fi

# The sandbox: read-only mounts but the data volume, and the image's user.
cat >"$WORK/launch.sh" <<'EOF'
#!/usr/bin/env bash
# launch.sh DATA WORKDIR UID GID COMMAND...: in a private mount namespace, keep DATA writable,
# make every other mount read-only, then run COMMAND in WORKDIR as UID:GID ("-": unchanged).
set -euo pipefail
data=$1 workdir=$2 uid=$3 gid=$4
shift 4
mount --bind "$data" "$data"
while read -r _ mnt _ opts _; do
  case $mnt in /proc | /proc/* | /sys | /sys/* | /dev | /dev/* | "$data") continue ;; esac
  case ,$opts, in *,ro,*) continue ;; esac
  mount -o remount,bind,ro "$mnt" 2>/dev/null || echo "image-check: could not make $mnt read-only" >&2
done </proc/self/mounts
cd "$workdir"
if [[ $uid != - ]]; then exec setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$@"; fi
exec "$@"
EOF
if [[ $(id -u) == 0 ]] && command -v setpriv >/dev/null && command -v unshare >/dev/null &&
  unshare -m --propagation private true 2>/dev/null; then
  SANDBOX="read-only mounts except ${VOLUMES[0]}, uid $RUN_UID"
  LAUNCH=(unshare -m --propagation private -- bash "$WORK/launch.sh" "$DATA" "$R$WORKDIR_IMG" "$RUN_UID" "$RUN_GID")
elif command -v unshare >/dev/null && unshare -r -m --propagation private true 2>/dev/null; then
  SANDBOX="read-only mounts except ${VOLUMES[0]} (user namespace; uid $(id -u), not $RUN_UID)"
  LAUNCH=(unshare -r -m --propagation private -- bash "$WORK/launch.sh" "$DATA" "$R$WORKDIR_IMG" - -)
else
  SANDBOX="chmod a-w outside ${VOLUMES[0]} (no mount namespace here; uid $(id -u), not $RUN_UID)"
  find "$R" -path "$DATA" -prune -o -exec chmod a-w {} + 2>/dev/null || true
  LAUNCH=(bash -c 'cd "$1" && shift && exec "$@"' launch "$R$WORKDIR_IMG")
fi
# The sandbox itself: the app and /tmp refuse writes, the volume takes them.
if "${LAUNCH[@]}" sh -c 'touch "$1/.probe"' probe "$R/app" 2>/dev/null; then
  fail "sandbox: /app is writable"
  rm -f "$R/app/.probe"
fi
refused="/app"
if "${LAUNCH[@]}" sh -c 'touch "$1/.probe"' probe "${TMPDIR:-/tmp}" 2>/dev/null; then
  rm -f "${TMPDIR:-/tmp}/.probe"
  say "  note: ${TMPDIR:-/tmp} stays writable in this sandbox"
else
  refused="/app and ${TMPDIR:-/tmp}"
fi
"${LAUNCH[@]}" sh -c 'touch "$1/.probe" && rm "$1/.probe"' probe "$DATA" ||
  die "sandbox: the volume is not writable by uid $RUN_UID"
ok "sandbox: writes fail in $refused, succeed in ${VOLUMES[0]}"
touch "$WORK/started-marker"
sleep 1 # mtimes after the marker are newer even on coarse clocks
"${LAUNCH[@]}" env -i "${RUN_ENV[@]}" "${ENTRYPOINT[@]}" "${CMD_HERE[@]}" 2>"$WORK/agent.log" >"$WORK/agent.out" &
AGENT_PID=$!
say "  started pid $AGENT_PID: ${ENTRYPOINT[*]} ${CMD[*]} ($SANDBOX)"
for _ in $(seq 1 300); do
  grep -q '"audit agent started"' "$WORK/agent.log" 2>/dev/null && break
  kill -0 "$AGENT_PID" 2>/dev/null || die "the agent exited during start"
  sleep 0.1
done
grep -q '"audit agent started"' "$WORK/agent.log" || die "the agent did not start within 30 s"
grep -q 'could not make' "$WORK/agent.log" && fail "sandbox: $(grep 'could not make' "$WORK/agent.log" | head -n 3)"
ADDRESSES="$(node -e 'for (const l of require("fs").readFileSync(process.argv[1], "utf8").split("\n")) {
  try { const o = JSON.parse(l); if (o.msg === "audit agent started") { console.log(JSON.stringify(o.addresses)); break; } } catch {}
}' "$WORK/agent.log")"
addr() { node -p "JSON.parse(process.argv[1])?.${1//./?.} ?? ''" "$ADDRESSES"; }
HTTP_ADDR="$(addr otlp.http)" GRPC_ADDR="$(addr otlp.grpc)" METRICS_ADDR="$(addr metrics.http)" HEALTH_ADDR="$(addr health_check.http)"
ok "serving: $ADDRESSES"

# ---- 4. it works ----
step "send an audit record, probe the endpoints, stop it"
MARKER="image-build-check-$RANDOM$RANDOM"
cat >"$WORK/request.json" <<EOF
{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"image-build-check"}}]},
"scopeLogs":[{"scope":{"name":"image-build-check"},"logRecords":[{"timeUnixNano":"$(date +%s)000000000",
"eventName":"audit.image.check","body":{"stringValue":"$MARKER"},
"attributes":[{"key":"audit","value":{"boolValue":true}}]}]}]}]}
EOF
[[ -n $HTTP_ADDR ]] || die "no OTLP/HTTP address in the start log"
status="$(curl -sS -o "$WORK/response" -w '%{http_code}' -H 'Content-Type: application/json' \
  --data-binary @"$WORK/request.json" "http://$HTTP_ADDR/v1/logs" || true)"
[[ $status == 200 ]] && ok "OTLP/HTTP JSON export answered 200 $(cat "$WORK/response")" ||
  fail "OTLP/HTTP export answered '$status': $(cat "$WORK/response" 2>/dev/null)"
landed=""
for _ in $(seq 1 100); do
  landed="$(grep -rl --include='records-*.ndjson' "$MARKER" "$DATA/out" 2>/dev/null | head -n 1 || true)"
  [[ -n $landed ]] && break
  sleep 0.1
done
[[ -n $landed ]] && ok "the record landed in ${VOLUMES[0]}${landed#"$DATA"}" || fail "the record did not reach $DATA/out within 10 s"
if [[ -n $GRPC_ADDR ]] && node -e 'const [h, p] = [process.argv[1].replace(/:\d+$/, ""), process.argv[1].split(":").pop()];
require("net").connect(Number(p), h).on("connect", () => process.exit(0)).on("error", () => process.exit(1));' "$GRPC_ADDR"; then
  ok "OTLP/gRPC listening on $GRPC_ADDR"
else
  fail "OTLP/gRPC not listening (${GRPC_ADDR:-no address})"
fi
metrics="$([[ -n $METRICS_ADDR ]] && curl -fsS "http://$METRICS_ADDR/metrics" 2>&1 || true)"
if grep -q '^otelcol_' <<<"$metrics"; then
  ok "metrics at http://$METRICS_ADDR/metrics"
else
  fail "no Prometheus metrics (${METRICS_ADDR:-no address}): $(head -c 200 <<<"$metrics")"
fi
mapfile -d '' HEALTHCHECK < <(img 'Array.isArray(i.healthcheck?.test) ? i.healthcheck.test : i.healthcheck ? ["sh", "-c", i.healthcheck.test.replace(/^CMD\s+/i, "")] : []')
if ((${#HEALTHCHECK[@]} == 0)); then
  fail "the Dockerfile has no HEALTHCHECK"
elif [[ $HEALTH_ADDR != "127.0.0.1:$HEALTH_PORT" ]]; then
  fail "health_check is not on 127.0.0.1:$HEALTH_PORT (start log: '${HEALTH_ADDR}')"
elif in_image "${HEALTHCHECK[@]}"; then
  ok "HEALTHCHECK command exits 0 (health_check on $HEALTH_ADDR)"
else
  fail "HEALTHCHECK command failed: $(curl -sS "http://$HEALTH_ADDR/" 2>&1)"
fi
sleep 1.5 # one batch timeout: the record's manifest is signed while running, not only at shutdown
STOP_STARTED=$SECONDS
kill -TERM "$AGENT_PID"
for _ in $(seq 1 450); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$AGENT_PID" 2>/dev/null; then
  kill -KILL "$AGENT_PID"
  fail "still running 45 s after SIGTERM"
fi
rc=0
wait "$AGENT_PID" || rc=$?
AGENT_PID=""
[[ $rc == 0 ]] && ok "SIGTERM: exit 0 after $((SECONDS - STOP_STARTED)) s" || fail "SIGTERM: exit $rc"
errors="$(grep -E '"level":"(error|fatal)"' "$WORK/agent.log" | head -n 3 || true)"
[[ -z $errors ]] && ok "no error logged" || fail "errors logged: $errors"

step "after the run"
changed="$(find "$R" -path "$DATA" -prune -o -newer "$WORK/started-marker" -print | head -n 5 || true)"
[[ -z $changed ]] && ok "nothing written outside ${VOLUMES[0]}" || fail "written outside the volume: $changed"
key="$DATA/keys/signing.key"
if [[ -f $key ]]; then
  [[ $(stat -c %a "$key") == 600 ]] && ok "signing key generated in the volume, mode 600, owner uid $(stat -c %u "$key")" ||
    fail "signing key mode $(stat -c %a "$key")"
else
  fail "no signing key at ${VOLUMES[0]}/keys/signing.key"
fi
[[ -d $DATA/wal ]] && ok "WAL in ${VOLUMES[0]}/wal" || fail "no WAL directory in the volume"
if out="$(in_image "${ENTRYPOINT[@]}" verify --source "file:$DATA/out" --trust "$DATA/keys/signing.pub" 2>&1)"; then
  ok "audit-agent verify: $(printf '%s' "$out" | tr '\n' ' ' | cut -c1-160)"
else
  fail "audit-agent verify failed: $out"
fi
say "  sandbox: $SANDBOX"
finish
