# audiogan server image.
#   docker build -t audiogan .                       (CPU torch; --build-arg TORCH_INDEX=... for CUDA)
#   docker run --rm -p 50051:50051 audiogan          (then: audiogan-client vocode mel.npy -o out.wav)
#   scripts/docker_check.sh                          (build, then serve every kind of call from the image)
# Multi-stage: wheels are built in a throwaway stage so the runtime image carries no build tools.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY audiogan ./audiogan
COPY server ./server
COPY client ./client
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . ./client

FROM python:3.11-slim
# The CPU build of torch by default: the PyPI default wheel carries several GB of CUDA libraries.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# espeak-ng: the text-to-speech front end's phonemizer. Unpinned on purpose: the Debian release pins it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 audiogan
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --extra-index-url "$TORCH_INDEX" torch==2.11.0 torchaudio==2.11.0 \
    && pip install --no-cache-dir /wheels/audiogan_client-*.whl "$(ls /wheels/audiogan-[0-9]*.whl)[server]" \
    && rm -rf /wheels
USER 1000
WORKDIR /home/audiogan
# One port for the server and its health check: change it with -e AUDIOGAN_PORT=..., not --port. A server
# started with --tls-cert/--tls-key needs -e AUDIOGAN_TLS_CA=<CA or self-signed certificate, mounted> for
# its health check to speak TLS (and AUDIOGAN_TLS_NAME when the certificate does not name 127.0.0.1); the
# mounted key must be readable by uid 1000, else the server stops at once, saying so.
ENV AUDIOGAN_PORT=50051
EXPOSE ${AUDIOGAN_PORT}
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "audiogan_server.healthcheck"]
# A shell only to expand $AUDIOGAN_PORT (exec: the server is PID 1 and gets SIGTERM). All interfaces are in
# the entrypoint, not in CMD, so that `docker run audiogan --device cuda` still listens where -p can reach it;
# arguments append, and a later --host wins.
ENTRYPOINT ["/bin/sh", "-c", "exec audiogan-server --host 0.0.0.0 --port \"$AUDIOGAN_PORT\" \"$@\"", "audiogan-server"]
