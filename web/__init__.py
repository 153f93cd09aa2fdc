"""FastAPI app: HTML UI (Jinja2 + htmx fragments) and the JSON API under /api/v1."""
