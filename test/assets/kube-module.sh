# Sourced by build.sh and build-node.sh.
#
# kube_build DIR MODULE OUT CMD...: builds Kubernetes commands (k8s.io/kubernetes/cmd/CMD) into
# OUT from the Go module proxy. k8s.io/kubernetes cannot be `go install`ed: it is required by a
# small module MODULE in DIR that `replace`s every k8s.io staging module with the matching
# v0.X.Y tag, and the version -ldflags are set as Kubernetes' own build sets them. Needs
# K8S_VERSION and a `log` function.
kube_build() {
  local dir=$1 module=$2 out=$3 v="v0.${K8S_VERSION#1.}" m p c
  shift 3
  mkdir -p "$dir"
  {
    printf 'module %s\n\ngo 1.24\n\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' "$module" "$K8S_VERSION"
    for m in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider \
      cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api \
      cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms \
      kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics \
      mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller; do
      printf '\tk8s.io/%s => k8s.io/%s %s\n' "$m" "$m" "$v"
    done
    echo ")"
  } >"$dir/go.mod"
  {
    printf '//go:build tools\n\n// Package tools pins the Kubernetes commands this module builds.\npackage tools\n\nimport (\n'
    for c in "$@"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done
    echo ")"
  } >"$dir/tools.go"
  local ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$(cut -d. -f2 <<<"$K8S_VERSION")"
    ld="$ld -X $p.gitTreeState=clean -X $p.buildDate=2026-01-01T00:00:00Z"
  done
  (cd "$dir" && go mod tidy -e >&2 &&
    for c in "$@"; do
      log "building $c v$K8S_VERSION"
      CGO_ENABLED=0 go build -tags tools -trimpath -ldflags "$ld" -o "$out/$c.tmp" "k8s.io/kubernetes/cmd/$c" >&2
      mv "$out/$c.tmp" "$out/$c"
    done)
}
