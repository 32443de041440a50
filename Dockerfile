# One image for the API and every worker kind; the command picks the role.
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY scripts/install-system-packages.sh scripts/
RUN bash scripts/install-system-packages.sh --runtime-only && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY core core
COPY activities activities
COPY registry registry
COPY workflows workflows
COPY output_profiles output_profiles
COPY legacy_adapter legacy_adapter
COPY persistence persistence
COPY api api
COPY prodgraph prodgraph
COPY worker.py ./
RUN pip install --no-cache-dir -e .
ENV PRODGRAPH_STATE_DIR=/data
# The API's port (`python -m api.app`); workers listen on nothing.
EXPOSE 8000
CMD ["python", "worker.py", "--queues", "default,cad,render"]
