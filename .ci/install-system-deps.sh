#!/usr/bin/env bash
# System packages the tests need that pip cannot install: a PostgreSQL server and a
# MariaDB server (the SQL tests start throwaway ones on loopback). Idempotent; installs
# each only if it is missing, and stops any service a package starts on its own.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
UPDATED=""
apt_install() {
    if [ -z "$UPDATED" ]; then $SUDO apt-get update -qq; UPDATED=1; fi
    $SUDO apt-get install -y -qq --no-install-recommends "$@" > /dev/null
}

if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null; then
    apt_install postgresql
    # The Debian package starts a cluster of its own; the tests do not use it.
    if command -v pg_lsclusters > /dev/null; then
        pg_lsclusters -h 2>/dev/null | while read -r version name _; do
            $SUDO pg_ctlcluster "$version" "$name" stop 2>/dev/null || true
        done
    fi
fi

if ! command -v mariadb-install-db > /dev/null || ! { command -v mariadbd || [ -x /usr/sbin/mariadbd ]; } > /dev/null; then
    # policy-rc.d keeps the package from starting its own server; the tests start theirs.
    NO_START=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d > /dev/null
        $SUDO chmod +x /usr/sbin/policy-rc.d
        NO_START=1
    fi
    apt_install mariadb-server mariadb-client
    if [ -n "$NO_START" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
    # In case a service started anyway (no policy-rc.d honoured): stop it.
    if command -v service > /dev/null; then $SUDO service mariadb stop > /dev/null 2>&1 || true; fi
fi
