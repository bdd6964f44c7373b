"""The small web layer shared by the collector's review app and the device console.

Starlette + uvicorn (plain) + Jinja2: pure-Python wheels that install on aarch64 devices, a
few MB in all, one asyncio server thread beside the agent's own threads, and streaming
responses (MJPEG for the console). Nothing here is imported unless ``web:`` is configured;
the ``web`` extra provides the libraries (:func:`agent.web.config.require_web`).

Parts: :mod:`users` (the users file, scrypt hashes, roles), :mod:`auth` (signed session
cookies that survive a restart, CSRF tokens, failed-login limiting), :mod:`app` (the Starlette
application: login/logout, security headers, templates, static files), :mod:`server`
(uvicorn in a thread with a clean stop).
"""
