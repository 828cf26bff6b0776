#!/usr/bin/env bash
# Proxy -> Server with a real mTLS SUT, following the ITP documentation's
# steps verbatim: upload the SUT's ca.crt, download the platform's
# client.csr, sign it with the SUT's CA (openssl x509 -req ...), upload the
# resulting client.crt; then call the SUT through the platform as a
# participant and read the results.
#
# Start the quickstart first (go run ./cmd/caddy run --config
# examples/quickstart/Caddyfile), then run this script from anywhere.
# Needs: openssl, curl. Settings (defaults are the quickstart's):
#   ITP_ADMIN=localhost:2019  ITP_SECURE=https://localhost:8443  SUT_PORT=9443
set -euo pipefail
ADMIN=${ITP_ADMIN:-localhost:2019}
SECURE=${ITP_SECURE:-https://localhost:8443}
SUT_PORT=${SUT_PORT:-9443}
SESSION=${SESSION:-mtls-demo-$RANDOM$RANDOM}
work=$(mktemp -d)
sut_pid=
cleanup() { [ -n "$sut_pid" ] && kill "$sut_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
step() { printf '\n== %s\n' "$*"; }

step "the SUT owner's CA (ca.crt, ca.key) and the SUT's server certificate for localhost"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 -subj "/CN=SUT owner CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout sut.key -out sut.csr -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n' > sut.ext
openssl x509 -req -days 30 -in sut.csr -out sut.crt -CA ca.crt -CAkey ca.key -CAcreateserial -extfile sut.ext 2>/dev/null

step "the SUT: openssl s_server on port $SUT_PORT, requiring a client certificate signed by ca.crt"
openssl s_server -accept "$SUT_PORT" -cert sut.crt -key sut.key -CAfile ca.crt \
  -Verify 1 -verify_return_error -www -quiet >sut.log 2>&1 &
sut_pid=$!
sleep 1

step "download the platform's CSR (the key stays on the platform)"
curl -sSf "http://$ADMIN/itp/upstream/client.csr" -o client.csr
openssl req -in client.csr -noout -subject

step "sign it with the SUT's CA, as the documentation says"
openssl x509 -req -days 365 -in client.csr -out client.crt -CA ca.crt -CAkey ca.key -CAcreateserial

step "upload ca.crt and client.crt in a session $SESSION (payer: you, payee: the SUT)"
pem_json() { awk '{printf "%s\\n", $0}' "$1"; }
cat > session.json <<JSON
{"id": "$SESSION", "name": "mTLS SUT example",
 "components": [
  {"slug": "payer"},
  {"slug": "payee", "base_url": "https://localhost:$SUT_PORT",
   "ca_cert": "$(pem_json ca.crt)", "client_cert": "$(pem_json client.crt)"}]}
JSON
curl -sSf -X POST -H 'Content-Type: application/json' --data-binary @session.json "http://$ADMIN/itp/sessions"
echo

step "as the participant, in a folder of its own: get a client certificate (the documentation's commands)"
mkdir participant && cd participant
openssl genrsa -out client.key 2048 2>/dev/null
openssl req -new -key client.key -out client.csr -subj "/CN=payer" 2>/dev/null
curl -sSf "http://$ADMIN/itp/ca/root.crt" -o RootCA.crt
curl -sSf --cacert RootCA.crt -F file=@client.csr -o certificates.zip "$SECURE/itp/certificates"
# unzip, or Python's zipfile where unzip is missing
if command -v unzip >/dev/null; then unzip -oq certificates.zip; else python3 -m zipfile -e certificates.zip .; fi

step "call the SUT through the platform: mTLS on both legs"
curl -sS --cert client.crt --key client.key --cacert RootCA.crt \
  "$SECURE/testing/payer/payee/$SESSION/" -o sut-answer.html -w 'HTTP %{http_code}\n'
grep -m1 -i "verify return\|Client certificate\|subject=" sut-answer.html || head -5 sut-answer.html

step "the recorded results"
curl -sSf "http://$ADMIN/itp/sessions/$SESSION/results" |
  grep -E '"(check|status|message)"' | paste - - - | sed 's/^ *//'
