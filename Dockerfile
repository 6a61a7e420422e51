# audiogan runtime image. Build: docker build -t audiogan .   Run: docker run --rm -v $PWD:/out audiogan vocode -o /out/demo.wav
# Multi-stage: wheels are built in a throwaway stage so the runtime image carries no compiler.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY audiogan ./audiogan
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 1000 audiogan
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER audiogan
WORKDIR /home/audiogan
ENTRYPOINT ["audiogan"]
CMD ["--help"]
