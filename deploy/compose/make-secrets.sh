#!/bin/sh
# Makes the credentials docker-compose.gpu.yml (or, with its arguments, docker-compose.sim.yml)
# mounts, next to the certificates of scripts/make-certs.sh, each service only its own:
#
#   deploy/compose/make-secrets.sh OUT_DIR [AGENT_DIR=NODE_ID]...
#
#   OUT_DIR/control-plane/admin-token, router-token, node-secret
#   OUT_DIR/router/router-token           (the same router token; never the admin token)
#   OUT_DIR/<agent dir>/node-token        minted from node-secret for that node id
#   OUT_DIR/router.env                    REDIS_URL with the Redis password (+ provider keys you add)
#   OUT_DIR/redis.env                     REDISCLI_AUTH (the Redis password)
#   OUT_DIR/hf.env                        HF_TOKEN placeholder: set your token
#   OUT_DIR/grafana.env                   GF_SECURITY_ADMIN_PASSWORD
# Default agents: agent-vllm=gpu-host-1-vllm agent-tgi=gpu-host-1-tgi. Existing files are kept.
# Node tokens: NODE_TOKEN_CMD (default `npm run --silent credentials -- node-token`, run in the
# repository; on a host without Node: `docker run --rm -e ICP_NODE_SECRET icp:0.1.0 credentials
# node-token`) is run with `--id NODE_ID` and ICP_NODE_SECRET in its environment; it prints the token.
# Run as root, the files for the icp services go to ICP_UID:ICP_GID (default 1000:1000).
set -eu
[ $# -ge 1 ] || { sed -n '5p' "$0" >&2; exit 2; }
out=$1
shift
[ $# -gt 0 ] || set -- agent-vllm=gpu-host-1-vllm agent-tgi=gpu-host-1-tgi
uid=${ICP_UID:-1000}
gid=${ICP_GID:-1000}
umask 077
rand() { openssl rand -hex 32; }
# put FILE CONTENT: write once, owner-only.
put() {
  if [ -s "$1" ]; then echo "make-secrets: keeping $1"; return; fi
  mkdir -p "$(dirname "$1")"
  printf '%s\n' "$2" >"$1"
  chmod 0400 "$1"
  echo "make-secrets: wrote $1"
}
own() { [ "$(id -u)" -ne 0 ] || chown -R "$uid:$gid" "$@"; }

put "$out/control-plane/admin-token" "$(rand)"
put "$out/control-plane/node-secret" "$(rand)"
put "$out/control-plane/router-token" "$(rand)"
mkdir -p "$out/router"
[ -s "$out/router/router-token" ] || put "$out/router/router-token" "$(cat "$out/control-plane/router-token")"
redis=$(rand)
if [ ! -s "$out/redis.env" ]; then
  put "$out/redis.env" "REDISCLI_AUTH=$redis"
  put "$out/router.env" "REDIS_URL=redis://:$redis@redis:6379/0"
fi
put "$out/hf.env" "HF_TOKEN=hf_replace_me"
put "$out/grafana.env" "GF_SECURITY_ADMIN_PASSWORD=$(rand)"

mint=${NODE_TOKEN_CMD:-npm run --silent credentials -- node-token}
for spec in "$@"; do
  dir=${spec%%=*} id=${spec#*=}
  f=$out/$dir/node-token
  [ -s "$f" ] && { echo "make-secrets: keeping $f"; continue; }
  mkdir -p "$out/$dir"
  # shellcheck disable=SC2086 # NODE_TOKEN_CMD is a command line
  if token=$(ICP_NODE_SECRET=$(cat "$out/control-plane/node-secret") $mint --id "$id") && [ -n "$token" ]; then
    put "$f" "$token"
  else
    echo "make-secrets: could not mint the node token for $id (set NODE_TOKEN_CMD); write it to $f" >&2
  fi
done
own "$out/control-plane" "$out/router"
for spec in "$@"; do own "$out/${spec%%=*}"; done
echo "make-secrets: set HF_TOKEN in $out/hf.env; operators use $out/control-plane/admin-token (ICP_ADMIN_TOKEN)"
