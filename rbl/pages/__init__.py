"""The HTML pages of ``rbl serve --http``: lookup and delisting, a vendor's dashboard, the operator's queue.

``routes`` holds the aiohttp handlers and :func:`routes.add_pages`; ``words``
says codes and decisions in plain words (pure); ``forms`` signs the fields
that keep other sites from posting the forms (pure); ``plots`` draws a
vendor's history as SVG; ``templates/`` and ``static/`` are the Jinja2
templates and the one stylesheet.
"""
