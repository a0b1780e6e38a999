# Sourced by the build scripts that build commands of k8s.io/kubernetes (control plane,
# kubectl, node). k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces every
# staging module (k8s.io/api, k8s.io/client-go, …) with a local path. So a throwaway module
# requires it and pins each staging module to the matching v0.x release instead.
#
#   k8s_build_cmds WORK_DIR BIN_DIR MODULE_NAME VERSION CMD...
# builds each k8s.io/kubernetes/cmd/CMD missing from BIN_DIR, with the release ldflags (so
# `--version` is honest). Expects a `log` function.

k8s_write_module() {
  local work=$1 name=$2 version=$3
  shift 3
  local gomod staging
  log "resolving k8s.io/kubernetes@$version"
  gomod="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  staging="v0.${version#v1.}"
  {
    echo "module snapcron.local/$name"
    echo
    echo "go 1.26.0"
    echo
    echo "require k8s.io/kubernetes $version"
    echo
    echo "replace ("
    # each "k8s.io/x => ./staging/src/k8s.io/x" becomes "k8s.io/x => k8s.io/x v0.Y.Z"
    sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/src/.*#\t\1 => \1 '"$staging"'#p' "$gomod"
    echo ")"
  } >"$work/go.mod"
  {
    echo "//go:build tools"
    echo
    echo "package $name"
    echo
    echo "import ("
    for c in "$@"; do echo "	_ \"k8s.io/kubernetes/cmd/$c\""; done
    echo ")"
  } >"$work/tools.go"
}

k8s_build_cmds() {
  local work=$1 bin=$2 name=$3 version=$4
  shift 4
  local minor ldflags start c
  mkdir -p "$work" "$bin"
  minor="${version#v1.}"
  minor="${minor%%.*}"
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  k8s_write_module "$work" "$name" "$version" "$@"
  log "go mod tidy for k8s.io/kubernetes@$version (a few hundred modules the first time)"
  (cd "$work" && go mod tidy -e >&2)
  for c in "$@"; do
    [[ -x "$bin/$c" ]] && continue
    log "go build $c (minutes from cold on 2 cores)"
    start=$(date +%s)
    (cd "$work" && go build -trimpath -ldflags "$ldflags" -o "$bin/$c.tmp" "k8s.io/kubernetes/cmd/$c" >&2)
    mv "$bin/$c.tmp" "$bin/$c"
    log "built $c in $(($(date +%s) - start))s"
  done
}
