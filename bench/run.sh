#!/usr/bin/env bash
# caddy-itp benchmark: the ITP path against Caddy's stock reverse_proxy, both
# served by ONE binary built from this repository, in front of a real mTLS
# upstream (nginx). See bench/README.md.
#
# Usage: bench/run.sh [SECONDS] [CONNS]
#   SECONDS  one target's run in one round (default 5)
#   CONNS    connections of the load generator (default 32)
# Environment:
#   ROUNDS=3            rounds per scenario (targets alternate A B A B ...)
#   PROXY_PROCS=1       GOMAXPROCS of the proxy (Caddy)
#   NGINX_PROCS=1       nginx worker processes
#   LOADGEN_PROCS=      GOMAXPROCS of the load generator (default: all)
#   PIN=0               1: taskset the proxy to CPU 0, nginx and loadgen to the others
#   SCENARIOS="ka newconn stream upload jws insecure memory profile sessions"
#   SESSIONS=10000      sessions of the session-count scenario
#   BIG_MB=100          the large body of the memory scenario
#   BIG_CONNS=4         connections of the memory scenario
#   BASE_PORT=19400     ports BASE_PORT+1 .. +80 are used
#   SRC=worktree        build ./cmd/caddy from the working tree, or from a commit
#                       (SRC=HEAD, SRC=<sha>: git archive, so concurrent edits
#                       of the working tree do not matter)
#   BIN=                a prebuilt caddy binary instead
#   OUT=bench/out       run.log, summary.txt and the pprof profiles
#   KEEP=0              1: keep the work folder (PKI, configs, logs)
set -euo pipefail

T=${1:-5}
C=${2:-32}
ROUNDS=${ROUNDS:-3}
PROXY_PROCS=${PROXY_PROCS:-1}
NGINX_PROCS=${NGINX_PROCS:-1}
SCENARIOS=${SCENARIOS:-"ka newconn stream upload jws insecure memory profile sessions"}
SESSIONS=${SESSIONS:-10000}
BIG_MB=${BIG_MB:-100}
BIG_CONNS=${BIG_CONNS:-4}
BASE_PORT=${BASE_PORT:-19400}
PIN=${PIN:-0}

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
OUT=${OUT:-$here/out}
mkdir -p "$OUT"
w=$(mktemp -d /tmp/itp-bench.XXXXXX)
chmod 755 "$w" # nginx workers (user nobody) read the files below it
pids=()

cleanup() {
	local rc=$?
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if [ $rc -ne 0 ]; then
		echo "--- failed (exit $rc); last lines of the logs:" >&2
		tail -n 5 "$w"/caddy.log "$w"/nginx.err 2>/dev/null >&2 || true
	fi
	if [ "${KEEP:-0}" = 1 ]; then echo "work folder kept: $w" >&2; else rm -rf "$w"; fi
}
trap cleanup EXIT

exec > >(tee "$OUT/run.log") 2>&1

P_UP=$((BASE_PORT + 43))       # nginx, mTLS
P_UP_PLAIN=$((BASE_PORT + 80)) # nginx, plain HTTP
P_STOCK=$((BASE_PORT + 44))    # stock reverse_proxy, mTLS upstream
P_STOCK_PLAIN=$((BASE_PORT + 45)) # stock reverse_proxy, plain-HTTP upstream
P_ITP=$((BASE_PORT + 46))      # the itp handler
P_ADMIN=$((BASE_PORT + 19))    # Caddy's admin endpoint
ADMIN=http://localhost:$P_ADMIN

for tool in nginx openssl curl unzip go; do
	command -v $tool >/dev/null || { echo "run.sh: $tool is missing (apt-get install -y nginx openssl curl unzip)" >&2; exit 1; }
done
on_cpu() { # cpu-list command...: run pinned when PIN=1
	local cpus=$1; shift
	if [ "$PIN" = 1 ]; then taskset -c "$cpus" "$@"; else "$@"; fi
}
last_cpu=$(($(nproc) - 1))
other_cpus=1-$last_cpu
[ "$last_cpu" -ge 1 ] || other_cpus=0

echo "# caddy-itp bench $(date -u +%FT%TZ) on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
if [ "${SRC:-worktree}" = worktree ] && [ -z "${BIN:-}" ]; then
	echo "# $(cd "$repo" && git log -1 --format='%h %s' | cut -c1-80)$(cd "$repo" && git diff --quiet HEAD -- . ':!bench' || echo ' (+ uncommitted changes)')"
elif [ -z "${BIN:-}" ]; then
	echo "# $(cd "$repo" && git log -1 --format='%h %s' "$SRC" | cut -c1-80)"
fi
echo "# bench/run.sh $T $C  ROUNDS=$ROUNDS PROXY_PROCS=$PROXY_PROCS NGINX_PROCS=$NGINX_PROCS PIN=$PIN"

# ---- build ----
if [ -n "${BIN:-}" ]; then
	cp "$BIN" "$w/caddy"
elif [ "${SRC:-worktree}" = worktree ]; then
	(cd "$repo" && go build -o "$w/caddy" ./cmd/caddy)
else
	mkdir -p "$w/src"
	git -C "$repo" archive "$SRC" | tar -x -C "$w/src"
	(cd "$w/src" && go build -o "$w/caddy" ./cmd/caddy)
fi
(cd "$repo" && go build -o "$w/loadgen" ./bench/loadgen)
LG=$w/loadgen

# ---- PKI (openssl) ----
P=$w/pki
bash "$here/pki.sh" "$P" >/dev/null

# ---- upstream: nginx, mTLS and plain HTTP ----
mkdir -p "$w/www/files" "$w/ngtmp"
head -c 1024 /dev/zero | tr '\0' x >"$w/body1k"
BODY=$(cat "$w/body1k")
head -c $((1 << 20)) /dev/zero >"$w/www/files/1m.bin"
truncate -s $((BIG_MB << 20)) "$w/www/files/big.bin"
chmod -R a+rX "$w/www"
cat >"$w/nginx.conf" <<NG
worker_processes $NGINX_PROCS;
daemon off;
pid $w/nginx.pid;
error_log $w/nginx.err;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $w/ngtmp/body;
	proxy_temp_path $w/ngtmp/proxy;
	fastcgi_temp_path $w/ngtmp/fcgi;
	uwsgi_temp_path $w/ngtmp/uwsgi;
	scgi_temp_path $w/ngtmp/scgi;
	keepalive_requests 1000000;
	client_max_body_size 0;
	server {
		listen 127.0.0.1:$P_UP ssl;
		server_name localhost;
		ssl_certificate $P/sut-server.crt;
		ssl_certificate_key $P/sut-server.key;
		ssl_client_certificate $P/sut-ca.crt;
		ssl_verify_client on;
		location / { default_type application/json; return 200 "$BODY"; }
		location /files/ { root $w/www; }
	}
	server {
		listen 127.0.0.1:$P_UP_PLAIN;
		location / { default_type application/json; return 200 "$BODY"; }
		location /files/ { root $w/www; }
	}
}
NG
(
	[ "$PIN" = 1 ] && exec taskset -c "$other_cpus" nginx -c "$w/nginx.conf"
	exec nginx -c "$w/nginx.conf"
) &
pids+=($!)

# ---- the proxy: one binary, one Caddyfile ----
caddyfile() { # with_stock(0|1)
	cat <<CF
{
	admin localhost:$P_ADMIN
	persist_config off
	auto_https disable_redirects
	storage file_system $w/data
	log {
		level ERROR
	}
	itp {
		public_url https://localhost:$P_ITP
	}
}

# the ITP path: server certificate from the ITP CA, client certificate asked
# for and judged per request, sessions from the admin API
https://localhost:$P_ITP {
	tls {
		issuer itp
		client_auth {
			mode request
			trust_pool itp
		}
	}
	itp
	respond "not a testing route" 404
}
CF
	[ "$1" = 1 ] || return 0
	cat <<CF

# stock Caddy: client auth against the ITP root (fetched from the admin API),
# reverse_proxy with upstream mTLS
https://localhost:$P_STOCK {
	tls {
		issuer itp
		client_auth {
			mode require_and_verify
			trust_pool file $w/itp-root.crt
		}
	}
	reverse_proxy https://127.0.0.1:$P_UP {
		transport http {
			tls_client_auth $P/proxy-client.crt $P/proxy-client.key
			tls_trust_pool file $P/sut-ca.crt
			tls_server_name localhost
		}
	}
}

# stock Caddy with a plain-HTTP upstream (the insecure-upstream anchor)
https://localhost:$P_STOCK_PLAIN {
	tls {
		issuer itp
		client_auth {
			mode require_and_verify
			trust_pool file $w/itp-root.crt
		}
	}
	reverse_proxy http://127.0.0.1:$P_UP_PLAIN
}
CF
}
caddyfile 0 >"$w/Caddyfile.boot"
caddyfile 1 >"$w/Caddyfile"
(cd "$w" && exec env GOMAXPROCS="$PROXY_PROCS" XDG_DATA_HOME="$w/xdg" XDG_CONFIG_HOME="$w/xdg" \
	"$w/caddy" run --config "$w/Caddyfile.boot" --adapter caddyfile) >"$w/caddy.log" 2>&1 &
CADDY_PID=$!
pids+=($CADDY_PID)
[ "$PIN" = 1 ] && taskset -acp 0 $CADDY_PID >/dev/null

wait_for() { # url
	for _ in $(seq 100); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "run.sh: $1 did not answer" >&2
	return 1
}
wait_for "$ADMIN/itp/ca/root.crt"

# the ITP root, the participant's certificate (POST /itp/ca/sign), and the
# platform's upstream client certificate, signed by the SUT CA as the ITP
# documentation says
curl -fsS "$ADMIN/itp/ca/root.crt" -o "$w/itp-root.crt"
curl -fsS -X POST --data-binary @"$P/client.csr" "$ADMIN/itp/ca/sign" -o "$w/certificates.zip"
unzip -q -o "$w/certificates.zip" -d "$w/participant"
cp "$P/client.key" "$w/participant/client.key"
curl -fsS "$ADMIN/itp/upstream/client.csr" -o "$w/upstream-client.csr"
(cd "$P" && openssl x509 -req -days 365 -in "$w/upstream-client.csr" -out "$w/upstream-client.crt" \
	-CA sut-ca.crt -CAkey sut-ca.key -CAcreateserial 2>/dev/null)

# now the full config, with the stock sites trusting the ITP root
curl -fsS -X POST -H 'Content-Type: text/caddyfile' --data-binary @"$w/Caddyfile" "$ADMIN/load"

# ---- sessions through the admin API ----
pem_json() { awk '{printf "%s\\n", $0}' "$1"; }
SUT_CA=$(pem_json "$P/sut-ca.crt")
UP_CERT=$(pem_json "$w/upstream-client.crt")
JWS_PUB=$(pem_json "$P/jws.pub")
session_json() { # id kind(tls|plain|jws)
	local base="https://127.0.0.1:$P_UP" extra="" certs=",\"ca_cert\":\"$SUT_CA\",\"client_cert\":\"$UP_CERT\""
	case $2 in
	plain) base="http://127.0.0.1:$P_UP_PLAIN" certs="" ;;
	jws) extra=",\"environment\":{\"CLIENT_JWS_PUBLIC_KEY\":\"$JWS_PUB\"},\"jws\":[{\"source\":\"client\",\"target\":\"sut\",\"direction\":\"request\",\"header\":\"X-JWS-Signature\",\"format\":\"detached\",\"alg\":\"RS256\",\"public_key\":\"{{ env.CLIENT_JWS_PUBLIC_KEY }}\",\"mode\":\"verify\",\"enforce\":true}]" ;;
	esac
	printf '{"id":"%s","name":"bench %s","components":[{"slug":"client"},{"slug":"sut","base_url":"%s"%s}]%s}' \
		"$1" "$2" "$base" "$certs" "$extra"
}
create_session() { # id kind
	local code
	code=$(session_json "$1" "$2" | curl -sS -o "$w/session.out" -w '%{http_code}' -X POST \
		-H 'Content-Type: application/json' --data-binary @- "$ADMIN/itp/sessions")
	[ "$code" = 201 ] || { echo "run.sh: creating session $1: $code $(cat "$w/session.out")" >&2; exit 1; }
}
create_session bench tls
create_session bench-plain plain
create_session bench-jws jws
for i in $(seq 0 6); do create_session "$(printf 'b%05d' "$i")" tls; done # 10 sessions in all
session_json '@ID@' tls >"$w/session.tmpl"

ITP=https://localhost:$P_ITP/testing/client/sut
STOCK=https://localhost:$P_STOCK
ITP_URL=$ITP/bench
for u in "$STOCK/" "$ITP_URL/"; do
	code=$(curl -s -o /dev/null -w '%{http_code}' --cert "$w/participant/client.crt" --key "$P/client.key" \
		--cacert "$w/itp-root.crt" "$u" || true)
	echo "# GET $u -> $code"
	[ "$code" = 200 ] || { echo "run.sh: $u answered $code" >&2; exit 1; }
done

lg() { # loadgen load with the participant's certificate
	on_cpu "$other_cpus" env ${LOADGEN_PROCS:+GOMAXPROCS=$LOADGEN_PROCS} "$LG" load \
		-cert "$w/participant/client.crt" -key "$P/client.key" -ca "$w/itp-root.crt" "$@"
}
std() { lg -d "${T}s" -c "$C" -rounds "$ROUNDS" -admin "$ADMIN" "$@" | tee -a "$w/lg.out"; }
note() { echo "$*" | tee -a "$w/lg.out"; }
result() { grep '^RESULT' "$w/lg.out" | tail -n 1; }
peak_rss() { grep VmHWM "/proc/$CADDY_PID/status" | awk '{printf "%.1f MB", $2/1024}'; }
reset_peak() { echo 5 >"/proc/$CADDY_PID/clear_refs" 2>/dev/null; }

for s in $SCENARIOS; do
	echo
	case $s in
	ka)
		std -scenario keepalive-1k -target stock="$STOCK/" -target itp="$ITP_URL/"
		;;
	newconn)
		std -scenario newconn-1k -newconn -target stock="$STOCK/" -target itp="$ITP_URL/"
		;;
	stream)
		std -scenario stream-1MB-GET -target stock="$STOCK/files/1m.bin" -target itp="$ITP_URL/files/1m.bin"
		;;
	upload)
		std -scenario upload-1MB-POST -method POST -body-size $((1 << 20)) \
			-target stock="$STOCK/" -target itp="$ITP_URL/"
		;;
	jws)
		sig=$("$LG" jws -key "$P/jws.key" -body-size 1024)
		std -scenario jws-RS256-detached-1k-POST -method POST -body-size 1024 -header "X-JWS-Signature: $sig" \
			-header 'Content-Type: application/json' \
			-target itp="$ITP_URL/" -target itp-jws="$ITP/bench-jws/"
		n=$(curl -fsS "$ADMIN/itp/sessions/bench-jws/results?check=Request:%20JWS%20Signature" | jq length)
		bad=$(curl -fsS "$ADMIN/itp/sessions/bench-jws/results?check=Request:%20JWS%20Signature&status=fail" | jq length)
		if [ "$n" = 0 ]; then
			note "NOTE jws: the itp handler recorded no 'Request: JWS Signature' result: session JWS rules are" \
				"not applied yet, so this ratio measures nothing; rerun once they are (SCENARIOS=jws)"
		else
			note "NOTE jws: $n of the session's kept results are 'Request: JWS Signature', $bad of them failed"
		fi
		;;
	insecure)
		std -scenario insecure-upstream-1k -target stock-plain="https://localhost:$P_STOCK_PLAIN/" \
			-target itp-plain="$ITP/bench-plain/"
		;;
	memory)
		echo "== memory: peak RSS (VmHWM, reset before each) of the proxy, $BIG_CONNS conns, ${T}s each"
		mem() { # label url [loadgen flags]
			local label=$1 url=$2; shift 2
			reset_peak || { echo "   (cannot reset VmHWM: figures are peaks since start)"; }
			lg -d "${T}s" -c "$BIG_CONNS" -rounds 1 -warmup 0 -target "$label=$url" "$@" | grep -E 'round 1 ' || true
			echo "   $label peak RSS $(peak_rss)"
			note "RESULT memory $label peak-rss $(peak_rss)"
		}
		mem itp-GET-1MB "$ITP_URL/files/1m.bin"
		mem "itp-GET-${BIG_MB}MB" "$ITP_URL/files/big.bin"
		mem stock-GET-1MB "$STOCK/files/1m.bin"
		mem "stock-GET-${BIG_MB}MB" "$STOCK/files/big.bin"
		mem itp-POST-1MB "$ITP_URL/" -method POST -body-size $((1 << 20))
		mem "itp-POST-${BIG_MB}MB" "$ITP_URL/" -method POST -body-size $((BIG_MB << 20))
		mem "stock-POST-${BIG_MB}MB" "$STOCK/" -method POST -body-size $((BIG_MB << 20))
		;;
	profile)
		echo "== profile: CPU and allocations under keep-alive 1 KB load, ${T}s each (files in $OUT)"
		for tg in stock itp; do
			url=$STOCK/
			[ $tg = itp ] && url=$ITP_URL/
			curl -fsS "$ADMIN/debug/pprof/allocs" -o "$OUT/$tg.allocs.before.pb.gz"
			lg -d "$((T + 2))s" -c "$C" -rounds 1 -warmup 0 -admin "$ADMIN" -target "$tg=$url" >"$OUT/$tg.profile-load.txt" &
			lgpid=$!
			sleep 1
			curl -fsS "$ADMIN/debug/pprof/profile?seconds=$T" -o "$OUT/$tg.cpu.pb.gz"
			wait $lgpid
			curl -fsS "$ADMIN/debug/pprof/allocs" -o "$OUT/$tg.allocs.after.pb.gz"
			grep 'round 1' "$OUT/$tg.profile-load.txt"
			go tool pprof -top -nodecount=30 "$w/caddy" "$OUT/$tg.cpu.pb.gz" >"$OUT/$tg.cpu.top.txt" 2>/dev/null
			go tool pprof -top -cum -nodecount=60 "$w/caddy" "$OUT/$tg.cpu.pb.gz" >"$OUT/$tg.cpu.cum.txt" 2>/dev/null
			go tool pprof -top -nodecount=40 -sample_index=alloc_objects \
				-diff_base "$OUT/$tg.allocs.before.pb.gz" "$w/caddy" "$OUT/$tg.allocs.after.pb.gz" \
				>"$OUT/$tg.allocs.top.txt" 2>/dev/null
			echo "   $tg: CPU top -> $OUT/$tg.cpu.top.txt, allocations top -> $OUT/$tg.allocs.top.txt"
		done
		;;
	sessions)
		n=$((SESSIONS - 10))
		std -scenario sessions-10 -target stock="$STOCK/" -target itp-10="$ITP/b{i}/" -spread 7
		r10=$(result | awk '{print $5}')
		on_cpu "$other_cpus" "$LG" sessions -admin "$ADMIN" -template "$w/session.tmpl" -n "$n" -start 7 -pid "$CADDY_PID" |
			tee -a "$w/lg.out"
		std -scenario "sessions-$SESSIONS" -target stock="$STOCK/" -target "itp-$SESSIONS=$ITP/b{i}/" -spread $((n + 7))
		rbig=$(result | awk '{print $5}')
		# where the time goes with that many sessions (background sync and
		# results flushes included): a CPU profile under the same ITP load
		lg -d "$((T + 2))s" -c "$C" -rounds 1 -warmup 0 -target "itp-$SESSIONS=$ITP/b{i}/" -spread $((n + 7)) \
			>"$OUT/itp-$SESSIONS.profile-load.txt" &
		lgpid=$!
		sleep 1
		curl -fsS "$ADMIN/debug/pprof/profile?seconds=$T" -o "$OUT/itp-$SESSIONS.cpu.pb.gz"
		wait $lgpid
		go tool pprof -top -cum -nodecount=40 "$w/caddy" "$OUT/itp-$SESSIONS.cpu.pb.gz" >"$OUT/itp-$SESSIONS.cpu.top.txt" 2>/dev/null
		echo "   itp at $SESSIONS sessions: CPU top (cumulative) -> $OUT/itp-$SESSIONS.cpu.top.txt"
		note "$(awk -v a="$r10" -v b="$rbig" -v n="$SESSIONS" \
			'BEGIN { printf "RESULT sessions throughput(itp/stock at %d) / throughput(itp/stock at 10) %.3f", n, (a > 0 ? b / a : 0) }')"
		;;
	*)
		echo "run.sh: unknown scenario $s" >&2
		exit 1
		;;
	esac
done

echo
echo "== summary (bench/run.sh $T $C, ROUNDS=$ROUNDS PROXY_PROCS=$PROXY_PROCS)"
grep -E '^(RESULT|NOTE)' "$w/lg.out" | tee "$OUT/summary.txt"
