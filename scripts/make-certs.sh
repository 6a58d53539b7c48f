#!/bin/sh
# Makes the cluster CA and one certificate per service with the openssl CLI, for mutual TLS on the
# agents' gRPC port (docs/security.md, docs/operations.md "Install on one host").
#
#   scripts/make-certs.sh OUT_DIR [SERVICE_DIR COMMON_NAME SUBJECT_ALT_NAMES]...
#
# Without certificate triples it makes the ones docker-compose.gpu.yml mounts:
#   OUT_DIR/ca/ca.key, ca.crt          the CA (its key is mounted in no container)
#   OUT_DIR/control-plane/             CN control-plane   (the identity agents accept Drain/Resume from)
#   OUT_DIR/router/                    CN router          (the identity agents accept Generate from)
#   OUT_DIR/agent-vllm/                CN gpu-host-1-vllm, SAN DNS:agent-vllm (node id; the address routers dial)
#   OUT_DIR/agent-tgi/                 CN gpu-host-1-tgi,  SAN DNS:agent-tgi
# each holding tls.crt, tls.key and ca.crt; compose mounts OUT_DIR/<service> read-only at
# /etc/icp/secrets. Every certificate has extendedKeyUsage serverAuth,clientAuth. An existing CA
# is reused (so a new agent's certificate joins the cluster); an existing certificate is kept
# unless FORCE=1. Run as root, the files go to ICP_UID:ICP_GID (default 1000:1000, the image's
# `node` user), keys mode 0400. DAYS (default 365) sets the certificates' lifetime.
set -eu

if [ $# -lt 1 ] || [ $(( ($# - 1) % 3 )) -ne 0 ]; then
  sed -n '4,6p' "$0" >&2
  exit 2
fi
out=$1
shift
if [ $# -eq 0 ]; then
  set -- \
    control-plane control-plane DNS:control-plane \
    router router DNS:router \
    agent-vllm gpu-host-1-vllm DNS:agent-vllm \
    agent-tgi gpu-host-1-tgi DNS:agent-tgi
fi
days=${DAYS:-365}
uid=${ICP_UID:-1000}
gid=${ICP_GID:-1000}
umask 077

mkdir -p "$out/ca"
if [ ! -s "$out/ca/ca.key" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days $((days * 3)) \
    -keyout "$out/ca/ca.key" -out "$out/ca/ca.crt" -subj /CN=icp-ca \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  echo "make-certs: new CA $out/ca/ca.crt"
fi

while [ $# -gt 0 ]; do
  dir=$1 cn=$2 sans=$3
  shift 3
  case $dir in */* | .* | ca) echo "make-certs: bad service directory name: $dir" >&2; exit 2 ;; esac
  d=$out/$dir
  mkdir -p "$d"
  if [ -s "$d/tls.crt" ] && [ "${FORCE:-0}" != 1 ]; then
    echo "make-certs: keeping $d/tls.crt (FORCE=1 replaces it)"
  else
    ext=$(mktemp)
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=critical,CA:FALSE\n' "$sans" >"$ext"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$d/tls.key" -out "$d/tls.csr" -subj "/CN=$cn" 2>/dev/null
    openssl x509 -req -in "$d/tls.csr" -CA "$out/ca/ca.crt" -CAkey "$out/ca/ca.key" -CAcreateserial -CAserial "$out/ca/ca.srl" \
      -days "$days" -extfile "$ext" -out "$d/tls.crt" 2>/dev/null
    rm -f "$d/tls.csr" "$ext"
    echo "make-certs: $d/tls.crt CN=$cn $sans"
  fi
  cp "$out/ca/ca.crt" "$d/ca.crt"
  chmod 0400 "$d/tls.key"
  chmod 0444 "$d/tls.crt" "$d/ca.crt"
  chmod 0700 "$d"
  [ "$(id -u)" -ne 0 ] || chown -R "$uid:$gid" "$d"
done
chmod 0400 "$out/ca/ca.key"
