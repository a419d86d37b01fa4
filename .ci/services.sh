#!/usr/bin/env bash
# The services the scale-out tests need: PostgreSQL on 127.0.0.1:5432 and
# Redis on 127.0.0.1:6379. Sourced by .ci/run before the tests: checks each
# answers, starts it if it is installed but stopped, and exports the URL the
# tests read (CDS_TEST_POSTGRES_URL, CDS_TEST_REDIS_URL). A service that is
# not installed is reported and its tests then say they were skipped.

# Whether something accepts TCP connections on 127.0.0.1:$1.
cds_port_answers() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Wait up to 30 s for port $1.
cds_wait_for_port() {
    for _ in $(seq 1 60); do
        cds_port_answers "$1" && return 0
        sleep 0.5
    done
    return 1
}

if ! cds_port_answers 5432 && command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    cds_wait_for_port 5432 || true
fi
if cds_port_answers 5432; then
    export CDS_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/test"
    echo "PostgreSQL answers: CDS_TEST_POSTGRES_URL=$CDS_TEST_POSTGRES_URL"
else
    echo "warning: PostgreSQL is not running on 127.0.0.1:5432 and could not be started; its tests are skipped" >&2
fi

if ! cds_port_answers 6379 && command -v redis-server >/dev/null 2>&1; then
    echo "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    cds_wait_for_port 6379 || true
fi
if cds_port_answers 6379; then
    export CDS_TEST_REDIS_URL="redis://127.0.0.1:6379"
    echo "Redis answers: CDS_TEST_REDIS_URL=$CDS_TEST_REDIS_URL"
else
    echo "warning: Redis is not running on 127.0.0.1:6379 and could not be started; its tests are skipped" >&2
fi
