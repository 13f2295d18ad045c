#!/usr/bin/env bash
# System packages the tests need that pip cannot install: a PostgreSQL server (the SQL
# tests start a throwaway one on loopback) and Chromium (the HTML report is opened in a
# real headless browser). Idempotent; installs only what is missing.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

missing=()
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null; then missing+=(postgresql); fi
if ! command -v chromium > /dev/null && ! command -v chromium-browser > /dev/null; then missing+=(chromium); fi

if [ "${#missing[@]}" -gt 0 ]; then
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi

# The Debian package starts a PostgreSQL cluster of its own; the tests do not use it.
if [[ " ${missing[*]} " == *" postgresql "* ]] && command -v pg_lsclusters > /dev/null; then
    pg_lsclusters -h 2>/dev/null | while read -r version name _; do
        $SUDO pg_ctlcluster "$version" "$name" stop 2>/dev/null || true
    done
fi
