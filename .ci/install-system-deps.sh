#!/usr/bin/env bash
# System packages the tests need that pip cannot install: a PostgreSQL server (the SQL
# tests start a throwaway one on loopback). Idempotent; does nothing if one is present.
set -euo pipefail

if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends postgresql > /dev/null
    # The Debian package starts a cluster of its own; the tests do not use it.
    if command -v pg_lsclusters > /dev/null; then
        pg_lsclusters -h 2>/dev/null | while read -r version name _; do
            $SUDO pg_ctlcluster "$version" "$name" stop 2>/dev/null || true
        done
    fi
fi
