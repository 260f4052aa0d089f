#!/usr/bin/env bash
# Makes a private certificate authority and a server certificate signed by it, for TLS in nginx
# on a machine or network without a public name (a LAN, a test run, a laptop).
#
#   scripts/make-self-signed-cert.sh [-o DIR] [NAME...]
#
# NAME is a DNS name or an IP address the server is reached by; the default is localhost,
# 127.0.0.1 and ::1. DIR defaults to var/tls in the repository. It writes:
#
#   ca.crt          the CA certificate: this is what devices and clients must trust
#   ca.key          the CA's private key (kept, so that new server certificates need no re-trust)
#   server.key      the server's private key          -> nginx ssl_certificate_key
#   server.crt      the server certificate alone
#   fullchain.pem   server.crt followed by ca.crt      -> nginx ssl_certificate
#
# An existing ca.crt/ca.key in DIR is reused; the server certificate is always issued anew.
# The certificate follows the rules the strictest clients apply: rustls (Anki Desktop, whose
# sync client ignores the common name and needs a subjectAltName, and rejects a leaf marked as a
# CA) and iOS (AnkiMobile: at most 825 days, extendedKeyUsage serverAuth).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/var/tls"
CA_DAYS=3650
SERVER_DAYS=825

usage() {
    sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

while getopts "o:h" option; do
    case $option in
    o) OUT="$OPTARG" ;;
    h) usage 0 ;;
    *) usage 2 ;;
    esac
done
shift $((OPTIND - 1))
NAMES=("$@")
[[ ${#NAMES[@]} -gt 0 ]] || NAMES=(localhost 127.0.0.1 ::1)

command -v openssl >/dev/null || {
    echo "error: openssl is needed (apt-get install openssl)" >&2
    exit 1
}

mkdir -p "$OUT"
cd "$OUT"
umask 077

san=""
for name in "${NAMES[@]}"; do
    # An address must go in as IP:, or clients comparing it against the URL's host reject it.
    if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then
        san+="${san:+,}IP:$name"
    else
        san+="${san:+,}DNS:$name"
    fi
done

if [[ ! -s ca.key || ! -s ca.crt ]]; then
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key
    openssl req -x509 -new -key ca.key -sha256 -days "$CA_DAYS" \
        -subj "/CN=Anki sidecar private CA $(date -u +%Y-%m-%d)" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out ca.crt
    echo "created a new CA: $OUT/ca.crt (trust this one on your devices)" >&2
else
    echo "reusing the CA in $OUT" >&2
fi

openssl ecparam -name prime256v1 -genkey -noout -out server.key
openssl req -new -key server.key -subj "/CN=${NAMES[0]}" -out server.csr
extensions="$(mktemp)"
trap 'rm -f "$extensions" server.csr' EXIT
cat >"$extensions" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
# A random serial, not a serial file beside the CA: re-issuing must never repeat a serial.
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
    -sha256 -days "$SERVER_DAYS" -extfile "$extensions" -out server.crt 2>/dev/null
cat server.crt ca.crt >fullchain.pem
# Certificates are public; only the keys stay owner-only.
chmod 644 ca.crt server.crt fullchain.pem

openssl verify -CAfile ca.crt server.crt >/dev/null
echo "issued $OUT/server.crt for: ${NAMES[*]} (valid $SERVER_DAYS days)" >&2
echo "nginx: ssl_certificate $OUT/fullchain.pem; ssl_certificate_key $OUT/server.key;" >&2
