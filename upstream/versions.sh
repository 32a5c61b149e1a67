# The one place where the upstream programs built from source are pinned.
# Sourced by scripts/build-upstream.sh (binaries) and scripts/kind-images.sh (kind node image).
# Kubernetes stays on 1.34: the kubelet of 1.35+ refuses cgroup v1 hosts by default.
KUBERNETES_VERSION=v1.34.4
# etcd 3.6 is the series Kubernetes 1.34 is tested with (its client libraries are 3.6 too).
ETCD_VERSION=v3.6.16
KIND_VERSION=v0.30.0
