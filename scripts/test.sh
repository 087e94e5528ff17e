#!/usr/bin/env bash
# Runs every test: unit tests, integration tests, and the external SCIM conformance suite
# (scim2-tester) against a freshly started daemon; then the integration tests (tests/it) a
# second time on PostgreSQL (ROLLCALL_TEST_STORE=postgres: each test gets a database of its
# own, rollcall_test_<hex>, dropped when it ends), so that they are the store contract for both
# backends. The server is ROLLCALL_TEST_POSTGRES_URL (default
# postgres://postgres@127.0.0.1:5432/postgres); this script does not start one.
#
# Installs what the tests need when it is missing: Python's venv module (Debian package
# python3-venv), the pinned suite and the test SMTP server (aiosmtpd, for tests/it/smtp.rs) in
# target/conformance-venv, and OpenLDAP's server and command-line tools (slapd, ldap-utils)
# for the LDAP fixture in tests/it/slapd.rs, and
# Chromium with its WebDriver server (chromium, chromium-driver) for the browser fixture in
# tests/it/browser.rs, and PostgreSQL's client tools (postgresql-client) to check that the
# PostgreSQL server answers.
#
#   scripts/test.sh            # from the repository root
#
# With CI=true a test whose service is missing fails instead of skipping; so does the
# PostgreSQL pass when the server does not answer (without CI it is skipped, loudly).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '==> %s\n' "$*" >&2; }

apt_install() {
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    log "installing Debian packages: $*"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# A C compiler and linker: Rust links with it, and the bundled SQLite is C.
if ! command -v cc >/dev/null; then
    apt_install gcc libc6-dev
fi

# Python 3 with venv and pip, for the conformance suite.
if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    apt_install python3 python3-venv
fi

# OpenLDAP's slapd and the ldap* tools, for tests/it/slapd.rs: the tests start their own
# slapd on a loopback port. The preseed stops the package from configuring (and starting) a
# system slapd: nothing listens on 389 and the install asks nothing.
if [ ! -x /usr/sbin/slapd ] || ! command -v ldapsearch >/dev/null || ! command -v slapadd >/dev/null; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "slapd slapd/no_configuration boolean true" | $sudo debconf-set-selections
    apt_install slapd ldap-utils
fi

# Headless Chromium and chromedriver, for tests/it/browser.rs: each test starts its own
# chromedriver on a loopback port, which starts Chromium with a fresh profile.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    apt_install chromium chromium-driver
fi

# psql, to check that the PostgreSQL server of the second pass answers.
if ! command -v psql >/dev/null; then
    apt_install postgresql-client
fi

venv=${ROLLCALL_CONFORMANCE_VENV:-$PWD/target/conformance-venv}
export ROLLCALL_CONFORMANCE_VENV=$venv
requirements=tests/conformance/requirements.txt
stamp=$venv/.requirements
if ! cmp -s "$requirements" "$stamp" || ! "$venv/bin/python" -c 'import scim2_tester, aiosmtpd' 2>/dev/null; then
    log "installing the SCIM conformance suite and the test SMTP server into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$stamp"
fi

log "cargo test"
output=$(mktemp)
trap 'rm -f "$output"' EXIT
status=0
cargo test --locked 2>&1 | tee "$output" || status=$?

# The integration tests again, on PostgreSQL.
postgres_url=${ROLLCALL_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
postgres_shown=$(printf '%s' "$postgres_url" | sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#')
if PGCONNECT_TIMEOUT=5 psql "$postgres_url" -XAtqc 'select 1' >/dev/null 2>&1; then
    log "cargo test --test it on PostgreSQL ($postgres_shown)"
    ROLLCALL_TEST_STORE=postgres ROLLCALL_TEST_POSTGRES_URL=$postgres_url \
        cargo test --locked --test it 2>&1 | tee -a "$output" || status=$?
elif [ "${CI:-}" = true ]; then
    log "PostgreSQL at $postgres_shown does not answer: the integration tests cannot run on it"
    log "(start it, or point ROLLCALL_TEST_POSTGRES_URL at one)"
    status=1
else
    banner='************************************************************************'
    printf '\n%s\nskipped: the integration tests on PostgreSQL: no server answers at %s\n' \
        "$banner" "$postgres_shown" >&2
    printf '(start one, or set ROLLCALL_TEST_POSTGRES_URL; with CI=true this fails)\n%s\n\n' \
        "$banner" >&2
fi
# One closing line with the totals of every test binary, both passes.
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$output"
exit "$status"
