#!/usr/bin/env bash
# The core crate stays pure: no git, no async runtime, no HTTP, no
# Kubernetes client, no file watcher, no command line. Fails when
# `cargo tree` of platform-capstone-core (normal dependencies, transitive)
# shows one of them, naming the path that pulls it in.
set -euo pipefail
cd "$(dirname "$0")/../.."
forbidden='^(git2|tokio|reqwest|hyper|kube|kube-client|kube-core|oci-client|notify|axum|clap)$'
found=$(cargo tree --locked -p platform-capstone-core -e normal --prefix none --format '{p}' \
    | awk '{print $1}' | sort -u | grep -E "$forbidden" || true)
if [ -n "$found" ]; then
    echo "platform-capstone-core must not depend on: $(echo "$found" | tr '\n' ' ')" >&2
    for crate in $found; do
        echo "-- how $crate gets in:" >&2
        cargo tree --locked -p platform-capstone-core -e normal -i "$crate" >&2 || true
    done
    exit 1
fi
echo "platform-capstone-core: none of git2, tokio, reqwest, hyper, kube, oci-client, notify, axum, clap"
