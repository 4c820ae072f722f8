#!/usr/bin/env bash
# Builds the rq4d image on a machine without a container registry: static binaries made on the
# host, copied into an empty image (the Dockerfile's `prebuilt` stage).
#
#   scripts/docker-build.sh                 # rq4d + the rqlited TEST DOUBLE -> rq4d:test-double
#   RQLITED=/path/to/rqlited scripts/docker-build.sh   # a real, static rqlited -> rq4d:<version>-local
#
# Options (environment): RQ4D_IMAGE (the tag to give; default as above), CARGO_TARGET_DIR
# (default: target), RQ4D_SKIP_CARGO=1 (reuse binaries already built), RQ4D_GIT_REV=<rev>
# (build the binaries from that commit, e.g. HEAD, instead of the work tree).
# With a registry, build the usual way instead: `docker build -t rq4d:<version> .`
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

target_dir=${CARGO_TARGET_DIR:-$root/target}
src=$root
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n ${RQ4D_GIT_REV:-} ]]; then
    # A target directory of its own: cargo keys a workspace's path packages by their path in
    # the workspace, so a build of the extracted copy and one of the work tree would share
    # fingerprints, and the next work-tree build would reuse the copy's crates as fresh.
    target_dir=${CARGO_TARGET_DIR:-$root/target/docker-rev}
    revision=$(git rev-parse --short "$RQ4D_GIT_REV")
    src=$target_dir/docker-src
    rm -rf "$src" && mkdir -p "$src"
    git archive "$RQ4D_GIT_REV" | tar -x -C "$src"
elif [[ -n $(git status --porcelain -- protocol daemon tests Cargo.toml Cargo.lock 2>/dev/null) ]]; then
    revision="$revision+local-changes"
fi
triple=x86_64-unknown-linux-gnu
bins=$target_dir/$triple/release

if [[ ${RQ4D_SKIP_CARGO:-0} != 1 ]]; then
    echo "== building static binaries (cargo, release, crt-static)" >&2
    (cd "$src" && RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR=$target_dir \
        cargo build --release --locked --target $triple \
        -p rq4d -p rq4d-tests --bin rq4d --bin rqlited-double >&2)
fi

static() {
    local out
    out=$(file -L "$1")
    [[ $out == *"statically linked"* || $out == *"static-pie linked"* ]]
}
for bin in "$bins/rq4d" "$bins/rqlited-double"; do
    [[ -x $bin ]] || { echo "missing $bin" >&2; exit 1; }
    static "$bin" || { echo "$bin is not static: $(file -L "$bin")" >&2; exit 1; }
done

version=$("$bins/rq4d" --version | awk '{print $2}')
if [[ -n ${RQLITED:-} ]]; then
    rqlited=$RQLITED
    # `rqlited -version` prints "rqlited 8.43.3 (commit ...)": keep "rqlited 8.43.3".
    kind=$("$rqlited" -version 2>&1 | head -n1 | tr -d '\r' | awk '{ print $1, $2 }' || true)
    [[ $kind == rqlited\ * ]] || kind="rqlited ${kind:-(version unknown)}"
    static "$rqlited" || {
        echo "RQLITED=$rqlited is not a static binary; an image FROM scratch cannot run it." >&2
        echo "Use the registry build (docker build .) or a static rqlited." >&2
        exit 1
    }
    # Not rq4d:<version>, the release's tag (`docker build .`): a build from host binaries
    # must never overwrite it.
    tag=${RQ4D_IMAGE:-rq4d:$version-local}
else
    rqlited=$bins/rqlited-double
    kind=test-double
    tag=${RQ4D_IMAGE:-rq4d:test-double}
fi

context=$target_dir/docker-context
rm -rf "$context"
mkdir -p "$context/tmp" "$context/data"
# /tmp as every image has it (root's, world-writable, sticky): COPY would make it 0755, and ADD
# keeps the modes of a tar.
tar -C "$context" --numeric-owner --owner=0 --group=0 --mode=1777 -cf "$context/tmp.tar" tmp
cp "$bins/rq4d" "$context/rq4d"
cp "$rqlited" "$context/rqlited"

echo "== docker build --target prebuilt -t $tag (rqlited: $kind)" >&2
DOCKER_BUILDKIT=0 docker build -q -f "$root/Dockerfile" --target prebuilt \
    --build-arg "RQLITED_KIND=$kind" --build-arg "RQ4D_VERSION=$version" \
    --build-arg "RQ4D_REVISION=$revision" \
    -t "$tag" "$context" >&2

image_bytes=$(docker image inspect -f '{{.Size}}' "$tag")
rqlited_bytes=$(stat -c %s "$context/rqlited")
rq4d_bytes=$(stat -c %s "$context/rq4d")
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "image $tag: $(mib "$image_bytes") = rqlited ($kind) $(mib "$rqlited_bytes") + rq4d $(mib "$rq4d_bytes")" >&2
echo "$tag"
