"""The admission webhook server: the FastAPI app, uvicorn over TLS, and Prometheus metrics."""
