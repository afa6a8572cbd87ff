#!/bin/sh
# bench/redis_cmd/run.sh: per-command cost of digestd's Redis connection,
# the hiredis-async transport of before (lib/store/redis.c at OLD, default
# dcf120a, the commit before the TLS work) against today's redis_wire, both
# built here from the same bench source with the same flags.
#
#   bench/redis_cmd/run.sh [ROUNDS]      (needs build/ built, redis-server, valgrind)
#
# Prints, per round and interleaved (old, new, new over TLS): round trips/s and
# pipelined commands/s against a private redis-server, then callgrind's
# instructions per command (the difference between 20000 and 10000 commands,
# so start-up cancels out): the number the noisy shared machine cannot blur.
set -eu
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
OLD=${OLD:-dcf120a}
B=build
W=$(mktemp -d /tmp/redis_cmd.XXXXXX)
trap 'kill $RPID 2>/dev/null || true; rm -rf "$W"' EXIT

CFLAGS="-O2 -g -std=gnu11 -D_GNU_SOURCE -Ilib $(pkg-config --cflags libuv hiredis json-c)"
LIBS="$B/libdg_metrics.a $B/libdg_config.a $B/libdg_core.a $(pkg-config --libs libuv hiredis json-c libssl libcrypto)"
git show "$OLD:lib/store/redis.c" > "$W/redis_old.c"
cc $CFLAGS -o "$W/old" bench/redis_cmd/redis_cmd.c "$W/redis_old.c" $LIBS
cc $CFLAGS -o "$W/new" bench/redis_cmd/redis_cmd.c lib/store/redis.c lib/store/redis_wire.c \
    lib/store/redis_tls.c lib/store/resp.c $LIBS

# One redis-server with a plain port and a TLS port (certificates made here).
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
(cd "$W" && openssl req -x509 $ec -keyout ca.key -out ca.crt -days 1 -subj /CN=bench-ca \
    && printf 'subjectAltName=IP:127.0.0.1\n' > ext \
    && openssl req $ec -keyout s.key -out s.csr -subj /CN=127.0.0.1 \
    && openssl x509 -req -in s.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out s.crt -extfile ext) \
    >/dev/null 2>&1
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
P=$(free_port)
TP=$(free_port)
redis-server --port $P --tls-port $TP --bind 127.0.0.1 --save '' --appendonly no \
    --tls-cert-file "$W/s.crt" --tls-key-file "$W/s.key" --tls-ca-cert-file "$W/ca.crt" \
    --tls-auth-clients no --daemonize no --logfile "$W/redis.log" &
RPID=$!
for i in $(seq 50); do
    redis-cli -p $P ping >/dev/null 2>&1 && break
    sleep 0.1
done
PLAIN="REDIS_URL=redis://127.0.0.1:$P/0"
TLS="REDIS_URL=rediss://127.0.0.1:$TP/0 REDIS_TLS_CA_FILE=$W/ca.crt"

echo "== throughput (interleaved; the machine is shared, so look at all rounds)"
for r in $(seq "$ROUNDS"); do
    for v in old new tls; do
        case $v in tls) bin=new; e=$TLS ;; *) bin=$v; e=$PLAIN ;; esac
        printf '%s round %s: ' "$v" "$r"; env $e "$W/$bin" rt 20000 | tr '\n' ' '
        env $e "$W/$bin" pipe 200000
    done
done

echo "== instructions per command (callgrind, client process only)"
instr() { # bin mode n env...
    bin=$1 mode=$2 n=$3; shift 3
    env "$@" valgrind --tool=callgrind --callgrind-out-file=/dev/null "$W/$bin" "$mode" "$n" 2>&1 \
        | sed -n 's/.*Collected : *\([0-9]*\).*/\1/p'
}
for v in old new tls; do
    case $v in tls) bin=new; e=$TLS ;; *) bin=$v; e=$PLAIN ;; esac
    for mode in rt pipe; do
        a=$(instr $bin $mode 10000 $e)
        b=$(instr $bin $mode 20000 $e)
        echo "$v $mode: $(( (b - a) / 10000 )) instructions/command"
    done
done
