#!/usr/bin/env bash
# pki.sh DIR — the openssl half of the benchmark PKI:
#   sut-ca.{crt,key}        the SUT's CA (trusted by nginx for client certs;
#                           signs the platform's upstream client certificate)
#   sut-server.{crt,key}    nginx's server certificate (localhost, 127.0.0.1)
#   proxy-client.{crt,key}  stock reverse_proxy's upstream client certificate
#                           (EC P-256 like the platform's upstream key)
#   client.{key,csr}        the participant's key and CSR; the platform's own
#                           CA signs it through POST /itp/ca/sign (run.sh)
#   jws.{key,pub}           an RS256 key pair for the JWS scenario
# CLIENT_KEY=rsa (default, as the ITP documentation) or ec for the participant.
set -euo pipefail
d=${1:?usage: pki.sh DIR}
mkdir -p "$d"
cd "$d"

openssl ecparam -name prime256v1 -genkey -noout -out sut-ca.key 2>/dev/null
openssl req -x509 -new -key sut-ca.key -subj "/CN=bench SUT root" -days 30 -out sut-ca.crt \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign

openssl ecparam -name prime256v1 -genkey -noout -out sut-server.key 2>/dev/null
openssl req -new -key sut-server.key -subj "/CN=localhost" -out sut-server.csr
printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "extendedKeyUsage=serverAuth" >sut-server.ext
openssl x509 -req -in sut-server.csr -CA sut-ca.crt -CAkey sut-ca.key -CAcreateserial -days 30 \
	-extfile sut-server.ext -out sut-server.crt 2>/dev/null

openssl ecparam -name prime256v1 -genkey -noout -out proxy-client.key 2>/dev/null
openssl req -new -key proxy-client.key -subj "/CN=stock-proxy" -out proxy-client.csr
printf '%s\n' "extendedKeyUsage=clientAuth" >proxy-client.ext
openssl x509 -req -in proxy-client.csr -CA sut-ca.crt -CAkey sut-ca.key -CAcreateserial -days 30 \
	-extfile proxy-client.ext -out proxy-client.crt 2>/dev/null

if [ "${CLIENT_KEY:-rsa}" = ec ]; then
	openssl ecparam -name prime256v1 -genkey -noout -out client.key 2>/dev/null
else
	openssl genrsa -out client.key 2048 2>/dev/null
fi
openssl req -new -key client.key -subj "/CN=bench-participant" -out client.csr

openssl genrsa -out jws.key 2048 2>/dev/null
openssl rsa -in jws.key -pubout -out jws.pub 2>/dev/null
