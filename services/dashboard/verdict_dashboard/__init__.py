"""The web console: a backend-for-frontend over the generated gRPC clients (no SQL, no Redis).

Server-rendered pages (Starlette + Jinja2), htmx for partial updates, Apache ECharts for charts,
live results pushed as server-sent events from AnalysisService.WatchResults. The signed-in user's
API key stays in the server's session store; the browser holds an opaque session id.
"""
