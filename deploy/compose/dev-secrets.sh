#!/bin/sh
# Dev credentials for docker-compose.sim.yml (the laptop stack): a CA and certificates
# (scripts/make-certs.sh), tokens and the Redis password (make-secrets.sh), in
# deploy/compose/dev-secrets/ (git-ignored), one directory per service. Run it once from the
# repository root before `docker compose -f docker-compose.sim.yml up --build`; node tokens are
# minted with `npm run credentials` (NODE_TOKEN_CMD to use another command). The containers run as
# uid 1000: on Linux, if yours is another, run it with sudo (files then go to 1000:1000).
set -eu
here=$(dirname "$0")
out=${1:-$here/dev-secrets}
"$here/../../scripts/make-certs.sh" "$out" \
  control-plane control-plane DNS:control-plane \
  router router DNS:router \
  agent-gpu-a gpu-a DNS:agent-gpu-a \
  agent-gpu-b gpu-b DNS:agent-gpu-b
"$here/make-secrets.sh" "$out" agent-gpu-a=gpu-a agent-gpu-b=gpu-b
# No Hugging Face or Grafana in the sim stack.
rm -f "$out/hf.env" "$out/grafana.env"
# The token itself is never printed.
echo "dev-secrets: for the control plane's admin API (create a tenant and key):"
echo "  export ICP_ADMIN_TOKEN=\$(cat $out/control-plane/admin-token)"
