#!/usr/bin/env bash
# README command one: the end-to-end demo, on this machine, with the embedded
# defaults (local vault, SQLite). Installs packages and builds first.
#
#   1. vigosrv init in a temp root; vault init/unlock; three secrets set
#   2. the example stack in examples/demo/stacks (a config file with a DB
#      password, a TLS key file, an exec that reads a token on stdin)
#   3. vigosrv on 127.0.0.1; two envoys (web-a, web-b) with their own certs
#   4. vigo run --once for each into its own --apply-root; show the files
#   5. rotation: secrets set -> next run writes the new value, epoch bumped
#   6. web-b asks for web-a's secret -> PERMISSION_DENIED, audited
#   7. vigocli audit verify
#   8. scan every other place (db, logs, state dirs, bundles, run results)
#      for every secret value: nothing may be found
# Exits 0 only if all of that held. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)

if [[ "${VIGO_DEMO_SKIP_BUILD:-0}" != 1 ]]; then
  bash scripts/setup.sh
  bash scripts/build.sh >/dev/null
fi
BUILD=${VIGO_BUILD_DIR:-build}
[[ "$BUILD" == /* ]] || BUILD=$SRC/$BUILD
BIN=$BUILD/bin
PROBE=$BUILD/tests/resolve_probe

WORK=$(mktemp -d /tmp/vigo-demo.XXXXXX)
ROOT=$WORK/srv
SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [[ "${VIGO_DEMO_KEEP:-0}" == 1 ]]; then echo "demo: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { echo "demo: FAILED: $*" >&2; exit 1; }
cli() { "$BIN/vigocli" --root "$ROOT" "$@"; }

# Demo values: random per run, so a hit in the scan can only be a real leak.
rand() { head -c 18 /dev/urandom | base64 | tr '+/' '-_'; }
DB_PW="dbpw-$(rand)"
DB_PW2="dbpw2-$(rand)"
TLS_KEY="-----BEGIN PRIVATE KEY-----
$(rand)$(rand)
-----END PRIVATE KEY-----"
DEPLOY_TOKEN="tok-$(rand)"
REPORT_TOKEN="rep-$(rand)"
SECRETS=("$DB_PW" "$DB_PW2" "$DEPLOY_TOKEN" "$REPORT_TOKEN" "$(sed -n 2p <<<"$TLS_KEY")")

step "1. server root and vault"
"$BIN/vigosrv" init --root "$ROOT" --hostname localhost
rm -rf "$ROOT/stacks" && cp -r "$SRC/examples/demo/stacks" "$ROOT/stacks"
PASS=$WORK/passphrase; head -c 24 /dev/urandom | base64 >"$PASS"; chmod 600 "$PASS"
cli secrets init --passphrase-file "$PASS"
cli secrets unlock --passphrase-file "$PASS"
printf '%s\n' "$DB_PW" | cli secrets set webapp/prod/db_password
printf '%s' "$TLS_KEY" >"$WORK/tls.key"; chmod 600 "$WORK/tls.key"
cli secrets set webapp/tls/key --from-file "$WORK/tls.key"; rm -f "$WORK/tls.key"
printf '%s' "$DEPLOY_TOKEN" | cli secrets set webapp/prod/deploy_token
printf '%s' "$REPORT_TOKEN" | cli secrets set report/staging/token
cli secrets list
cli config validate

step "2. the server on 127.0.0.1"
"$BIN/vigosrv" --root "$ROOT" --grpc-listen 127.0.0.1:0 >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!
PORT=""
for _ in $(seq 100); do
  PORT=$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$WORK/server.out" "$WORK/server.log" | head -1)
  [[ -n "$PORT" ]] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; fail "vigosrv exited"; }
  sleep 0.1
done
[[ -n "$PORT" ]] || fail "vigosrv did not report its port"
echo "vigosrv pid $SERVER_PID listening on 127.0.0.1:$PORT"

step "3. two envoys"
for e in web-a web-b; do mkdir -p "$WORK/$e" && cli envoy issue "$e" --out "$WORK/$e/creds"; done
cli envoy list

run_agent() {  # envoy
  local e=$1
  mkdir -p "$WORK/$e/root" "$WORK/$e/state"
  "$BIN/vigo" run --once --server "127.0.0.1:$PORT" \
    --ca-file "$WORK/$e/creds/ca.pem" --cert-file "$WORK/$e/creds/cert.pem" \
    --key-file "$WORK/$e/creds/key.pem" --state-dir "$WORK/$e/state" \
    --apply-root "$WORK/$e/root" --log-level debug 2>>"$WORK/$e/agent.log"
}
show_file() {  # path
  stat -c '%A %U:%G %n' "$1"
  sed 's/^/    | /' "$1"; echo
}

step "4. vigo run --once for each envoy"
run_agent web-a || fail "web-a run failed"
run_agent web-b || fail "web-b run failed"
A=$WORK/web-a/root; B=$WORK/web-b/root
echo "-- web-a received (this is the one place plaintext belongs):"
show_file "$A/etc/webapp/config.yaml"
show_file "$A/etc/webapp/tls.key"
stat -c '%A %U:%G %n' "$A/var/lib/webapp/token.sha256"
echo "-- web-b received:"
show_file "$B/etc/report/report.conf"
grep -qF "password: $DB_PW" "$A/etc/webapp/config.yaml" || fail "web-a config lacks the password"
[[ "$(cat "$A/etc/webapp/tls.key")" == "$TLS_KEY" ]] || fail "web-a tls.key differs"
[[ "$(stat -c %a "$A/etc/webapp/tls.key")" == 600 ]] || fail "tls.key mode is not 0600"
[[ "$(stat -c %a "$A/etc/webapp/config.yaml")" == 640 ]] || fail "config.yaml mode is not 0640"
want=$(printf '%s' "$DEPLOY_TOKEN" | sha256sum | cut -d' ' -f1)
grep -q "$want" "$A/var/lib/webapp/token.sha256" || fail "the exec did not get the token on stdin"
echo "exec read the deploy token on stdin: sha256 matches"
grep -qF "token = $REPORT_TOKEN" "$B/etc/report/report.conf" || fail "web-b report.conf lacks its token"
[[ ! -e "$B/etc/webapp" ]] || fail "web-b received web-a's files"

step "5. rotation"
epoch_before=$("$BIN/vigo" status --state-dir "$WORK/web-a/state" | sed -n 's/.*epoch[^0-9]*\([0-9]*\).*/\1/p' | head -1)
printf '%s' "$DB_PW2" | cli secrets set webapp/prod/db_password
run_agent web-a || fail "web-a second run failed"
epoch_after=$("$BIN/vigo" status --state-dir "$WORK/web-a/state" | sed -n 's/.*epoch[^0-9]*\([0-9]*\).*/\1/p' | head -1)
echo "secrets_epoch: $epoch_before -> $epoch_after"
[[ -n "$epoch_before" && -n "$epoch_after" && "$epoch_after" -gt "$epoch_before" ]] || fail "epoch did not increase"
grep -qF "password: $DB_PW2" "$A/etc/webapp/config.yaml" || fail "rotated password not written"
show_file "$A/etc/webapp/config.yaml"

step "6. web-b asks for web-a's secret"
set +e
"$PROBE" --server "127.0.0.1:$PORT" --ca-file "$WORK/web-b/creds/ca.pem" \
  --cert-file "$WORK/web-b/creds/cert.pem" --key-file "$WORK/web-b/creds/key.pem" \
  --ref webapp/prod/db_password
rc=$?
set -e
[[ $rc == 5 ]] || fail "web-b was not denied (exit $rc)"
audit_json=$(cli audit list --json) || fail "vigocli audit list failed"
denied=$(grep '"secret.resolve.denied"' <<<"$audit_json" | tail -1)
echo "$denied"
grep -q '"envoy":"web-b"' <<<"$denied" || fail "denial not audited"

step "7. audit verify"
cli audit verify || fail "audit chain does not verify"

step "8. scan every other place for the secret values"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
SCAN=$WORK/scan; mkdir -p "$SCAN"
cli bundle show --envoy web-a --json >"$SCAN/bundle-web-a.json"
cli bundle show --envoy web-b --json >"$SCAN/bundle-web-b.json"
cli runs list --json >"$SCAN/runs.json"
for id in $(cli runs list --json | sed -n 's/.*"id":"\{0,1\}\([A-Za-z0-9-]*\).*/\1/p'); do
  cli runs show "$id" --json >>"$SCAN/runs.json" || true
done
cli audit list --json >"$SCAN/audit.json"
places=("$ROOT/db" "$ROOT/stacks" "$ROOT/server.yaml" "$ROOT/run" "$WORK/server.out" "$WORK/server.log"
        "$WORK/web-a/state" "$WORK/web-b/state" "$WORK/web-a/agent.log" "$WORK/web-b/agent.log" "$SCAN")
leaks=0
for s in "${SECRETS[@]}"; do
  for form in "$s" "$(printf '%s' "$s" | base64 -w0)" "$(printf '%s' "$s" | od -An -v -tx1 | tr -d ' \n')"; do
    if grep -rlaF -- "$form" "${places[@]}" 2>/dev/null; then leaks=$((leaks + 1)); fi
  done
done
echo "scanned: ${places[*]#$WORK/}"
[[ $leaks == 0 ]] || fail "$leaks secret form(s) found outside the target files"
echo "no secret value found outside the target files"

step "demo OK"
