# rq4d + rqlited in one minimal image: rq4d is the entrypoint and PID 1, rqlited its child.
#
# Two ways to build the same image layout (/rq4d, /rqlited, volume /data, user 10001):
#
#   * With a registry (the usual way): the default target builds rq4d in a Rust stage and takes
#     rqlited from the pinned official rqlite image.
#
#         docker build -t rq4d:0.1.0 .
#
#   * Without a registry (no image can be pulled): the first stage, `prebuilt`, only copies
#     static binaries made on the host into an empty image. scripts/docker-build.sh makes them,
#     lays them out in a build context of their own and runs
#
#         docker build -f Dockerfile --target prebuilt -t rq4d:test-double <context>
#
#     The legacy builder stops at the target stage, so nothing below `prebuilt` is pulled.
#     rqlited is the one named by RQLITED; without it, the rqlited TEST DOUBLE (no replication,
#     no SQLite) and the image is tagged rq4d:test-double and labelled rq4d.rqlited=test-double
#     so that nobody mistakes it for a release image.
#
# Configuration is by RQ4D_* environment variables (every rq4d flag has one; `rq4d --help`).
# No `# syntax=` line on purpose: it would make BuildKit pull an image.

FROM scratch AS prebuilt
ARG RQLITED_KIND=test-double
ARG RQ4D_VERSION=0.1.0
ARG RQ4D_REVISION=unknown
LABEL org.opencontainers.image.title="rq4d" \
      org.opencontainers.image.description="rq4d (gossip, PID 1) + rqlited: a self-forming rqlite cluster" \
      org.opencontainers.image.version="${RQ4D_VERSION}" \
      org.opencontainers.image.revision="${RQ4D_REVISION}" \
      rq4d.rqlited="${RQLITED_KIND}"
# The context holds rq4d and rqlited (static binaries), tmp.tar (an empty /tmp, mode 1777:
# ADD keeps a tar's modes, COPY would make it 0755, and rqlited run as another user needs it)
# and an empty data/.
COPY rq4d rqlited /
ADD tmp.tar /
# /data belongs to the user rq4d runs as: a new volume mounted there takes the image
# directory's owner, so it is writable without root.
COPY --chown=10001:10001 data /data
# PATH: `docker exec <container> rq4d members` finds /rq4d (a scratch image has no PATH at all).
ENV PATH=/ \
    RQ4D_RQLITED=/rqlited \
    RQ4D_DATA_DIR=/data \
    RQ4D_GOSSIP_BIND=0.0.0.0:7946 \
    RQ4D_API_ADDR=0.0.0.0:7947 \
    RQ4D_HTTP_PORT=4001 \
    RQ4D_RAFT_PORT=4002 \
    RQ4D_API=127.0.0.1:7947 \
    NO_COLOR=1
VOLUME /data
# Not root: neither rq4d nor rqlited needs it (ports above 1024; PR_SET_CHILD_SUBREAPER is
# unprivileged). A number, not a name, so Kubernetes' runAsNonRoot can check it without an
# /etc/passwd. Volumes made while the image ran as root need their owner changed once (README,
# "Run it in Docker"); rq4d says so, with the command, if it cannot write.
USER 10001:10001
# rqlite HTTP, rqlite Raft, rq4d gossip, rq4d status API (/health, /members, /metrics)
EXPOSE 4001/tcp 4002/tcp 7946/udp 7947/tcp
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 CMD ["/rq4d", "health", "--live"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/rq4d"]

# ---------------------------------------------------------------------------------------------
# The usual build, for machines that reach Docker Hub. Nothing below is used by `--target
# prebuilt`.

# rqlited, pinned: the version rq4d is tested against (docs/rqlited.md: v8.43.3).
FROM rqlite/rqlite:8.43.3 AS rqlite

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# A fully static binary (glibc, static-pie): it runs in any image, scratch included.
RUN RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target x86_64-unknown-linux-gnu -p rq4d --bin rq4d \
 && cp target/x86_64-unknown-linux-gnu/release/rq4d /rq4d

# The official image's rqlited is linked against musl, so the release image is Alpine rather
# than scratch, with the same layout as the prebuilt image's. It is not built FROM the official
# image, whose `VOLUME /rqlite/file` every container would inherit as an unused anonymous
# volume: rq4d keeps rqlited's data under /data (rq4d.json beside rqlite/).
FROM alpine:3.22 AS release
ARG RQ4D_VERSION=0.1.0
LABEL org.opencontainers.image.title="rq4d" \
      org.opencontainers.image.description="rq4d (gossip, PID 1) + rqlited: a self-forming rqlite cluster" \
      org.opencontainers.image.version="${RQ4D_VERSION}" \
      rq4d.rqlited="rqlited 8.43.3 (rqlite/rqlite:8.43.3)"
COPY --from=rqlite /bin/rqlited /rqlited
COPY --from=build /rq4d /rq4d
RUN mkdir -p /data && chown 10001:10001 /data
# PATH: `docker exec <container> rq4d members` finds /rq4d.
ENV PATH=/:${PATH} \
    RQ4D_RQLITED=/rqlited \
    RQ4D_DATA_DIR=/data \
    RQ4D_GOSSIP_BIND=0.0.0.0:7946 \
    RQ4D_API_ADDR=0.0.0.0:7947 \
    RQ4D_HTTP_PORT=4001 \
    RQ4D_RAFT_PORT=4002 \
    RQ4D_API=127.0.0.1:7947 \
    NO_COLOR=1
VOLUME /data
USER 10001:10001
EXPOSE 4001/tcp 4002/tcp 7946/udp 7947/tcp
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 CMD ["/rq4d", "health", "--live"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/rq4d"]
CMD []
