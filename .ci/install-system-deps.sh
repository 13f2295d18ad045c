#!/usr/bin/env bash
# System packages the tests need that pip cannot install: a PostgreSQL server and a
# MariaDB server (the SQL tests start throwaway ones on loopback) and Chromium (the HTML
# report is opened in a real headless browser). Idempotent; installs only what is
# missing, and leaves no server of a package running (the tests start their own).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

missing=()
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null; then missing+=(postgresql); fi
if ! command -v chromium > /dev/null && ! command -v chromium-browser > /dev/null; then missing+=(chromium); fi
if ! command -v mariadb-install-db > /dev/null || { ! command -v mariadbd > /dev/null && [ ! -x /usr/sbin/mariadbd ]; }; then
    missing+=(mariadb-server mariadb-client)
fi

if [ "${#missing[@]}" -gt 0 ]; then
    # policy-rc.d keeps the packages from starting their own servers.
    no_start=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d > /dev/null
        $SUDO chmod +x /usr/sbin/policy-rc.d
        no_start=1
    fi
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
    if [ -n "$no_start" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
fi

# The Debian package starts a PostgreSQL cluster of its own; the tests do not use it.
if [[ " ${missing[*]} " == *" postgresql "* ]] && command -v pg_lsclusters > /dev/null; then
    pg_lsclusters -h 2>/dev/null | while read -r version name _; do
        $SUDO pg_ctlcluster "$version" "$name" stop 2>/dev/null || true
    done
fi
# Likewise MariaDB's service, in case it started despite policy-rc.d.
if [[ " ${missing[*]} " == *" mariadb-server "* ]] && command -v service > /dev/null; then
    $SUDO service mariadb stop > /dev/null 2>&1 || true
fi
