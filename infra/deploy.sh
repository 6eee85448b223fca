#!/usr/bin/env bash
# SC2029: DEPLOY_DIR is meant to expand on this side, into the remote commands.
# shellcheck disable=SC2029
# make deploy TARGET=modal|fly|vps: check the tools and settings, then deploy.
#
# Every target reads the git-ignored .env.prod at the repository root. Nothing here prints a
# setting's value: secrets go from the file straight to the platform.
#   vps: DEPLOY_HOST=user@server (SSH), DEPLOY_DIR (default /opt/ragship).
set -euo pipefail

cd "$(dirname "$0")/.."
TARGET="${1:-}"
ENV_FILE="${ENV_FILE:-.env.prod}"

fail() {
  echo "make deploy: $*" >&2
  exit 1
}

need() {  # need COMMAND HOW-TO-INSTALL
  command -v "$1" >/dev/null 2>&1 || fail "'$1' is not installed: $2"
}

need_env_file() {
  [ -f "$ENV_FILE" ] || fail "$ENV_FILE is missing: copy .env.example to $ENV_FILE and fill it in (docs/deploy.md)"
  local key
  for key in "$@"; do
    grep -Eq "^${key}=.+" "$ENV_FILE" || fail "$ENV_FILE does not set $key"
  done
}

deploy_modal() {
  need modal "pip install modal, then 'modal token new'"
  modal token info >/dev/null 2>&1 || fail "modal is not logged in: run 'modal token new'"
  need_env_file DATABASE_URL SESSION_SECRET PUBLIC_URL
  modal secret create ragship --from-dotenv "$ENV_FILE" --force >/dev/null
  modal run infra/modal/ragship_modal.py::release
  modal deploy infra/modal/ragship_modal.py
  echo "OIDC redirect URI to register: $(grep -E '^PUBLIC_URL=' "$ENV_FILE" | cut -d= -f2-)/auth/callback"
}

deploy_fly() {
  local fly
  fly="$(command -v fly || command -v flyctl || true)"
  [ -n "$fly" ] || fail "'fly' is not installed: see https://fly.io/docs/flyctl/install/"
  "$fly" auth whoami >/dev/null 2>&1 || fail "fly is not logged in: run 'fly auth login'"
  need_env_file DATABASE_URL SESSION_SECRET PUBLIC_URL RATE_LIMIT_STORE
  "$fly" secrets import --stage --config infra/fly/fly.toml <"$ENV_FILE" >/dev/null
  "$fly" deploy --config infra/fly/fly.toml
  echo "OIDC redirect URI to register: $(grep -E '^PUBLIC_URL=' "$ENV_FILE" | cut -d= -f2-)/auth/callback"
}

deploy_vps() {
  need ssh "install OpenSSH's client"
  need git "install git"
  [ -n "${DEPLOY_HOST:-}" ] || fail "set DEPLOY_HOST=user@server (SSH access with Docker installed)"
  local dir="${DEPLOY_DIR:-/opt/ragship}"
  need_env_file SESSION_SECRET POSTGRES_PASSWORD RAGSHIP_DOMAIN
  ssh -o BatchMode=yes "$DEPLOY_HOST" true || fail "cannot reach $DEPLOY_HOST over SSH (key-based login)"
  ssh "$DEPLOY_HOST" "docker compose version >/dev/null" || fail "Docker Compose is missing on $DEPLOY_HOST"
  # The committed tree (what git tracks, nothing else), then the settings, readable by owner only.
  git archive --format=tar HEAD | ssh "$DEPLOY_HOST" "mkdir -p '$dir' && tar -x -C '$dir'"
  ssh "$DEPLOY_HOST" "umask 077 && cat > '$dir/.env.prod'" <"$ENV_FILE"
  # `up` runs the one-off migrate service (migrations, then ingest) before the app starts.
  ssh "$DEPLOY_HOST" "cd '$dir' && docker compose --env-file .env.prod -f infra/vps/compose.yaml up -d --build --remove-orphans"
  echo "OIDC redirect URI to register: https://$(grep -E '^RAGSHIP_DOMAIN=' "$ENV_FILE" | cut -d= -f2-)/auth/callback"
}

case "$TARGET" in
  modal) deploy_modal ;;
  fly) deploy_fly ;;
  vps) deploy_vps ;;
  *) fail "TARGET must be modal, fly or vps (got '${TARGET}'): make deploy TARGET=fly" ;;
esac
