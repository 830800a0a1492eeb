#!/usr/bin/env bash
# Builds the local control-plane binaries from the pinned wrapper modules in
# this folder into OUT (a cache folder outside the repository). Called by
# `ballast cluster build`, which picks OUT from a hash of these files.
# Usage: hack/build.sh OUT [component...]   components: k8s etcd kwok helm
# >>> tool prometheus
# A tool, built only when named, into its own cache folder (`hack/build.sh OUT prometheus`):
# its wrapper module and this section are keyed apart from the control plane, so a change
# here never rebuilds Kubernetes (operator/ballast/localcluster/tools.py).
# <<< tool prometheus
# >>> tool keda
# KEDA's operator and metrics API server (`hack/build.sh OUT keda`), keyed like Prometheus;
# its CRDs are copied from the module into OUT/crds (`ballast cluster up --keda` applies them).
# <<< tool keda
# >>> tool crane
# go-containerregistry's crane (`hack/build.sh OUT crane`), keyed like Prometheus: `make image`
# assembles the image archive with it (operator/ballast/image/).
# <<< tool crane
set -euo pipefail
# Everything runs inside main, which bash parses whole before running: an
# edit to this file while a long build runs cannot change what it does.
main() {
  out=${1:?usage: build.sh OUT [k8s|etcd|kwok|helm]...}
  shift
  here=$(cd "$(dirname "$0")" && pwd)
  mkdir -p "$out"
  export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod
  # The Kubernetes wrapper module: hack/k8s (newest minor) or hack/k8s-<minor>.
  k8s_module=${BALLAST_K8S_MODULE:-k8s}
  components=("$@")
  [ ${#components[@]} -eq 0 ] && components=(etcd kwok helm k8s)

  module_version() { # module path, wrapper dir -> version required there
    (cd "$here/$2" && go list -m -f '{{.Version}}' "$1")
  }
  module_dir() { # module path, wrapper dir -> its source in the module cache
    # `go list -m` names no directory for a module not yet downloaded (a
    # fresh machine): download it first.
    (cd "$here/$2" && go mod download "$1" && go list -m -f '{{.Dir}}' "$1")
  }

  for c in "${components[@]}"; do
    echo "==> building $c into $out"
    case $c in
      k8s)
        v=$(module_version k8s.io/kubernetes "$k8s_module")
        ver=${v#v}; major=${ver%%.*}; rest=${ver#*.}; minor=${rest%%.*}
        ld=""
        for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
          ld+=" -X $p.gitVersion=$v -X $p.gitMajor=$major -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
        done
        (cd "$here/$k8s_module" && go build -tags selinux,notest -trimpath -ldflags "-s -w $ld" -o "$out/" \
          k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
          k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
        ;;
      etcd)
        (cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$out/etcd" .)
        ;;
      kwok)
        v=$(module_version sigs.k8s.io/kwok kwok)
        (cd "$here/kwok" && go build -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$v" -o "$out/kwok" sigs.k8s.io/kwok/cmd/kwok)
        ;;
      helm)
        v=$(module_version helm.sh/helm/v3 helm)
        (cd "$here/helm" && go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$v" -o "$out/helm" helm.sh/helm/v3/cmd/helm)
        ;;
      # >>> tool prometheus
      prometheus)
        # remove_all_sd: only the file and static service discovery that Ballast writes;
        # no cloud SDKs in the binaries. The version is the module's VERSION file.
        dir=$(module_dir github.com/prometheus/prometheus prometheus)
        when=$(cd "$here/prometheus" && go list -m -f '{{.Time.UTC.Format "20060102-15:04:05"}}' github.com/prometheus/prometheus)
        p=github.com/prometheus/common/version
        ld="-X $p.Version=$(cat "$dir/VERSION") -X $p.Revision=$(module_version github.com/prometheus/prometheus prometheus)"
        ld+=" -X $p.Branch=HEAD -X $p.BuildUser=ballast@hack -X $p.BuildDate=$when"
        (cd "$here/prometheus" && go build -tags remove_all_sd,netgo -trimpath -ldflags "-s -w $ld" -o "$out/" \
          github.com/prometheus/prometheus/cmd/prometheus github.com/prometheus/prometheus/cmd/promtool)
        ;;
      # <<< tool prometheus
      # >>> tool keda
      keda)
        # Every scaler is compiled in (KEDA registers them all); ldflags as KEDA's Makefile sets.
        dir=$(module_dir github.com/kedacore/keda/v2 keda)
        v=$(module_version github.com/kedacore/keda/v2 keda)
        ld="-X github.com/kedacore/keda/v2/version.Version=${v#v} -X github.com/kedacore/keda/v2/version.GitCommit=$v"
        echo "    keda operator (cmd/operator -> keda)"
        (cd "$here/keda" && go build -trimpath -ldflags "-s -w $ld" -o "$out/keda" github.com/kedacore/keda/v2/cmd/operator)
        echo "    keda metrics API server (cmd/adapter -> keda-adapter)"
        (cd "$here/keda" && go build -trimpath -ldflags "-s -w $ld" -o "$out/keda-adapter" github.com/kedacore/keda/v2/cmd/adapter)
        mkdir -p "$out/crds"
        cp "$dir"/config/crd/bases/*.yaml "$out/crds/"
        chmod 0644 "$out"/crds/*.yaml
        ;;
      # <<< tool keda
      # >>> tool crane
      crane)
        v=$(module_version github.com/google/go-containerregistry crane)
        (cd "$here/crane" && go build -trimpath -ldflags "-s -w -X github.com/google/go-containerregistry/cmd/crane/cmd.Version=$v" \
          -o "$out/crane" github.com/google/go-containerregistry/cmd/crane)
        ;;
      # <<< tool crane
      *) echo "unknown component $c" >&2; exit 2 ;;
    esac
  done
  echo "==> done: $(ls "$out" | tr '\n' ' ')"
}

main "$@"
