"""Server-rendered pages (Jinja2 + htmx) and what they share."""
