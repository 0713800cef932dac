#!/usr/bin/env bash
# Builds local stand-ins for the three base images that Dockerfile and
# docker-compose.yml name, for machines that reach Debian's package mirror
# but no container registry. The compose test uses them when GO_IMAGE,
# RUNTIME_IMAGE and REDIS_IMAGE name them; .ci/run builds them and sets
# those variables when it cannot pull the real images.
#
#   tests/docker/standins.sh PREFIX
#
# makes (PREFIX is a local name such as gatehouse-standin):
#   PREFIX/golang:bookworm   Debian bookworm with this machine's Go toolchain
#   PREFIX/static:nonroot    the files of distroless/static: passwd with the
#                            nonroot user (65532), CA bundle, zoneinfo, /tmp;
#                            no shell, no package manager
#   PREFIX/redis:bookworm    Debian bookworm with Debian's redis-server
#
# Needs root, debootstrap, Go and a running Docker engine. Images that
# already exist are kept (the Go one only while it holds this machine's Go),
# so a second run costs nothing.
set -euo pipefail
umask 022 # the stand-ins' files must be readable by their unprivileged users
prefix=${1:?usage: standins.sh PREFIX}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

have() { docker image inspect "$1" >/dev/null 2>&1; }
# quiet runs a command with the engine's own builder (BuildKit would need
# the buildx plugin), and shows its output only when it fails.
quiet() { DOCKER_BUILDKIT=0 "$@" >"$work/out.log" 2>&1 || { cat "$work/out.log"; return 1; }; }
work=$(mktemp -d)
trap 'rm -rf --one-file-system "$work"' EXIT

base=$prefix/debian:bookworm
if ! have "$base"; then
  echo "standins: debootstrap bookworm (minbase) from $mirror"
  debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log"; exit 1; }
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  tar -C "$work/rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$base" >/dev/null
  rm -rf "$work/rootfs"
fi

golang=$prefix/golang:bookworm
# Rebuilt when this machine's Go is not the one it holds.
if have "$golang" && ! docker image inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$golang" |
  grep -qx "GOLANG_VERSION=$(go env GOVERSION)"; then
  docker image rm "$golang" >/dev/null
fi
if ! have "$golang"; then
  goroot=$(go env GOROOT)
  echo "standins: $golang with $(go env GOVERSION) from $goroot"
  mkdir -p "$work/go/ssl"
  cp /etc/ssl/certs/ca-certificates.crt "$work/go/ssl/"
  tar -C "$goroot/.." -c "$(basename "$goroot")" | tar -C "$work/go" -x
  mv "$work/go/$(basename "$goroot")" "$work/go/goroot"
  cat >"$work/go/Dockerfile" <<EOF
FROM $base
COPY ssl/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY goroot /usr/local/go
ENV GOLANG_VERSION=$(go env GOVERSION) GOTOOLCHAIN=local GOPATH=/go \
    PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /go
EOF
  quiet docker build -q -t "$golang" "$work/go"
  rm -rf "$work/go"
fi

static=$prefix/static:nonroot
if ! have "$static"; then
  echo "standins: $static (the distroless/static layout)"
  r=$work/static
  mkdir -p "$r/etc/ssl/certs" "$r/usr/share" "$r/tmp" "$r/home/nonroot" "$r/root"
  chmod 1777 "$r/tmp"
  chmod 700 "$r/home/nonroot" "$r/root"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
    'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$r/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'tty:x:5:' 'staff:x:50:' \
    'nonroot:x:65532:' >"$r/etc/group"
  cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/"
  cp -r /usr/share/zoneinfo "$r/usr/share/"
  chown 65532:65532 "$r/home/nonroot" # as in distroless
  tar -C "$r" --numeric-owner -c . >"$work/static.tar"
  docker import \
    --change 'USER 65532' --change 'WORKDIR /home/nonroot' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    "$work/static.tar" "$static" >/dev/null
fi

redis=$prefix/redis:bookworm
if ! have "$redis"; then
  echo "standins: $redis with Debian's redis-server"
  mkdir -p "$work/redis"
  # The official image turns protected mode off at build time (the
  # container's network is the boundary); its entry point also runs the
  # server as the redis user in /data. This one does the same.
  cat >"$work/redis/entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = redis-server ]; then shift; set -- redis-server --protected-mode no "$@"; fi
exec "$@"
EOF
  cat >"$work/redis/Dockerfile" <<EOF
FROM $base
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null \
 && rm -rf /var/lib/apt/lists/* && mkdir /data && chown redis:redis /data
COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh
VOLUME /data
WORKDIR /data
USER redis
ENTRYPOINT ["docker-entrypoint.sh"]
EXPOSE 6379
CMD ["redis-server"]
EOF
  quiet docker build -q -t "$redis" "$work/redis"
fi
echo "standins: ready: $golang $static $redis"
