"""The web faces: server-rendered pages (Jinja2), a little plain JavaScript, Server-Sent Events.

Pages live beside the JSON API in the ``web`` role: browser sessions in
secure cookies with CSRF tokens (`sessions`, `csrf`), HTML error pages
(`errors`), the SOC console (`console`). `app.install_web` wires them in.
"""
